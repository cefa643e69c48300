"""The two training objectives (stages 3 and 4 of train.py run the second again).

Stage 1 (AR distillation): the ternary student learns the float teacher's next-token distribution (KL at
temperature 1, teacher logits computed on the fly on the same windows) plus cross-entropy on the text itself.
Stage 2 (block diffusion by self-distillation): the same objective under causal attention, so AR decoding stays
as good, plus certainty forcing on the student's own greedy trajectories under the block-diffusion contract of
diffusion.trajectory_batch (cross-entropy toward the trajectory on masked positions with token shift and at the
end of each clean block, entropy minimisation where the student is already right)."""

import math

import torch
import torch.nn.functional as F

import diffusion
from modeling import causal_mask
from progress import Progress


def make_optimizer(model, lr, weight_decay):
    """AdamW; weight decay on matrices only (norm gains stay free)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)


def lr_at(step, total, peak, warmup, floor_ratio=0.1):
    """Linear warm-up, then cosine decay to floor_ratio * peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (floor_ratio + (1 - floor_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class Distiller:
    """Teacher targets for the student's vocabulary. The teacher (trained the llama2.c way) ends a story by
    predicting BOS; the student ends it with EOS, which bitrun stops at, so BOS probability moves to EOS. The
    teacher reads EOS as BOS (the separator it knows). The mask token (the student's extra id) gets 0."""

    def __init__(self, teacher, n_vocab, bos, eos):
        self.teacher, self.n_vocab, self.bos, self.eos = teacher, n_vocab, bos, eos

    @torch.no_grad()
    def targets(self, inputs):
        logits = self.teacher(inputs.masked_fill(inputs == self.eos, self.bos)).float()
        p = logits.softmax(-1)
        p[..., self.eos] += p[..., self.bos]
        p[..., self.bos] = 0
        p = F.pad(p, (0, self.n_vocab - p.shape[-1]))
        entropy = -(p * p.clamp(min=1e-30).log()).sum(-1)
        return p, entropy


def _kl(logq, p, entropy, rows):
    """Mean KL(p || q) over the selected rows."""
    return (-(p * logq).sum(-1) - entropy)[rows].mean()


def ar_losses(student, distiller, windows, ce_weight):
    inputs, targets = windows[:, :-1], windows[:, 1:]
    n = inputs.shape[1]
    logq = student(inputs, torch.arange(n), causal_mask(n)).log_softmax(-1)
    p, entropy = distiller.targets(inputs)
    rows = inputs != distiller.eos             # the token after EOS starts an unrelated document
    kl = _kl(logq, p, entropy, rows)
    ce = F.nll_loss(logq[rows], targets[rows])
    return kl + ce_weight * ce, kl, ce, (logq, p, entropy)


def run_ar_stage(student, distiller, stream, long_stream, cfg):
    """The last cfg["long_steps"] steps take windows from long_stream (same tokens per step in fewer, longer
    windows), so the student also learns the far positions of its context at little cost."""
    opt = make_optimizer(student, cfg["lr"], cfg["weight_decay"])
    bar = Progress("ar", cfg["steps"])
    student.train()
    for step in range(cfg["steps"]):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg["steps"], cfg["lr"], cfg["warmup"])
        if step < cfg["steps"] - cfg["long_steps"]:
            windows = stream.batch(cfg["batch"])
        else:
            windows = long_stream.batch(cfg["batch"] * (stream.seq_len + 1) // (long_stream.seq_len + 1))
        loss, kl, ce, _ = ar_losses(student, distiller, windows, cfg["ce_weight"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        bar.update(step + 1, windows.numel(), kl=float(kl), ce=float(ce))
    return bar.elapsed()


def certainty_forcing(logq, targets):
    """dParallel's certainty-forcing distillation on self-distillation targets: cross-entropy toward the
    trajectory on every target row, and the entropy of the rows whose argmax is already the target (pushing a
    right answer to full confidence, so it passes the decoder's threshold sooner). Returns (ce, entropy)."""
    rows = targets != -100
    lq, t = logq[rows], targets[rows]
    ce = F.nll_loss(lq, t)
    correct = (lq.argmax(-1) == t).float()
    entropy = -(lq.exp() * lq).sum(-1)
    return ce, (entropy * correct).sum() / max(1, int(rows.sum()))


def run_diffusion_stage(student, distiller, stream, trajectories, prompt_lengths, cfg, mask_id, block, generator):
    """Block diffusion by self-distillation: masked positions of the student's own greedy trajectories are
    the targets (certainty forcing), next to the stage-1 objective on real text under causal attention."""
    opt = make_optimizer(student, cfg["lr"], cfg["weight_decay"])
    bar = Progress("diffusion", cfg["steps"])
    student.train()
    for step in range(cfg["steps"]):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg["steps"], cfg["lr"], cfg["warmup"])
        windows = stream.batch(cfg["batch"])
        ar_loss, kl, ce, _ = ar_losses(student, distiller, windows, cfg["ce_weight"])

        pick = torch.randint(0, trajectories.shape[0], (cfg["batch"],), generator=generator)
        tokens, positions, targets, mask = diffusion.trajectory_batch(
            trajectories[pick], prompt_lengths[pick], block, mask_id, distiller.eos, generator)
        logq = student(tokens, positions, mask).log_softmax(-1)
        masked_ce, entropy = certainty_forcing(logq, targets)
        loss = ar_loss + cfg["diffusion_weight"] * (masked_ce + cfg["entropy_weight"] * entropy)

        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        bar.update(step + 1, windows.numel() + tokens.numel(), kl=float(kl), ce=float(ce),
                   masked_ce=float(masked_ce), entropy=float(entropy))
    return bar.elapsed()
