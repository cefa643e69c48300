"""Block diffusion under the block-causal contract (Fast-dLLM v2), for training and for evaluation.

Contract (shared/reference/diffusion.md): a sequence is cut into blocks of B positions at absolute multiples of B;
a position attends to every position of earlier blocks and to every position of its own block (bidirectional
inside a block, causal across blocks); output row j-1 predicts token j (token shift); the first position of a
block is never masked (it is the prompt tail or the token the previous block's commit pass predicted).

Training (Fast-dLLM v2): one forward over [noisy copy A ; noisy copy B ; clean copy] with the same positions for
the three; a noisy block sees the clean copy's earlier blocks and itself; the clean copy is block-causal, as the
K/V that decoding caches (prefill and commit passes) are. Copies A and B mask complementary positions, so every
position of every block is a target in one of them.

Evaluation: a Python reference of the decoding loop (greedy, iterative and adaptive modes) that counts forwards.
"""

import torch

from modeling import causal_mask


def block_ids(n, block):
    return torch.arange(n) // block


def block_causal_mask(n, block):
    """Bool [n, n]: row i may attend to column j iff j's block is not after i's block."""
    b = block_ids(n, block)
    return b[None, :] <= b[:, None]


def training_mask(length, block):
    """Bool [3L, 3L] attention mask for [noisy A ; noisy B ; clean] (each `length` long)."""
    b = block_ids(length, block)
    same = b[:, None] == b[None, :]
    earlier = b[None, :] < b[:, None]
    upto = b[None, :] <= b[:, None]
    z = torch.zeros(length, length, dtype=torch.bool)
    return torch.cat([
        torch.cat([same, z, earlier], 1),
        torch.cat([z, same, earlier], 1),
        torch.cat([z, z, upto], 1),
    ], 0)


def sample_masks(batch, length, block, generator):
    """Complementary bool masks [batch, length] (True = masked) for the two noisy copies.

    Per block: a mask ratio r ~ U(0, 1); in half of the blocks every non-first position is masked with
    probability r, in the other half only positions from a random cut onwards are (the shape decoding meets: the
    known tokens of a block come first, sub-block by sub-block). Copy B masks exactly the non-first positions
    copy A leaves visible."""
    n_blocks = length // block
    r = torch.rand(batch, n_blocks, 1, generator=generator)
    cut = torch.randint(1, block, (batch, n_blocks, 1), generator=generator)
    structured = torch.rand(batch, n_blocks, 1, generator=generator) < 0.5
    pos = torch.arange(block)[None, None, :]
    eligible = (pos >= 1) & (~structured | (pos >= cut))
    a = eligible & (torch.rand(batch, n_blocks, block, generator=generator) < r)
    b = (pos >= 1) & ~a
    return a.reshape(batch, length), b.reshape(batch, length)


def training_batch(windows, block, mask_id, generator):
    """windows: [batch, L + 1] token ids (L a multiple of block). Returns tokens [batch, 3L], positions [3L],
    targets [batch, 3L] (token id per output row, -100 where the row has no target) and the attention mask.

    Targets: a noisy row j-1 predicts token j when j is masked in that copy (token shift); a clean row at the end
    of a block predicts the next block's first token, what a commit pass provides during decoding."""
    x0 = windows[:, :-1]
    n, length = x0.shape
    ma, mb = sample_masks(n, length, block, generator)
    tokens = torch.cat([x0.masked_fill(ma, mask_id), x0.masked_fill(mb, mask_id), x0], 1)
    positions = torch.arange(length).repeat(3)
    ignore = torch.full_like(x0, -100)
    ta, tb, tc = ignore.clone(), ignore.clone(), ignore.clone()
    ta[:, :-1] = x0[:, 1:].masked_fill(~ma[:, 1:], -100)
    tb[:, :-1] = x0[:, 1:].masked_fill(~mb[:, 1:], -100)
    ends = torch.arange(block - 1, length, block)
    tc[:, ends] = windows[:, ends + 1]
    return tokens, positions, torch.cat([ta, tb, tc], 1), training_mask(length, block)


def trajectory_batch(trajectories, prompt_lengths, block, mask_id, eos, generator):
    """training_batch over self-distillation windows: trajectories [batch, L + 1] are prompts followed by the
    model's own greedy continuation, starting at position 0 like a decoded sequence (so blocks sit where the
    decoder puts them). Only continuation tokens up to the first EOS are targets: they are a deterministic
    function of what precedes them, so the model can learn to predict them with certainty; prompt tokens are
    not, and the EOS padding after the end is never decoded."""
    tokens, positions, targets, mask = training_batch(trajectories, block, mask_id, generator)
    idx = torch.arange(trajectories.shape[1])[None, :]
    after_prompt = idx >= prompt_lengths[:, None]
    is_eos = (trajectories == eos) & after_prompt
    first_eos = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full_like(prompt_lengths, idx.shape[1]))
    target_ok = (after_prompt & (idx <= first_eos[:, None]))[:, 1:]      # row j-1 predicts token j
    targets = targets.masked_fill(~target_ok.repeat(1, 3), -100)
    return tokens, positions, targets, mask


# ---------------------------------------------------------------------------------------------------------------
# Decoding, as shared/reference/diffusion.md describes it, over the student's full forward (no cache: the cache
# of the real decoder holds exactly the block-causal K/V this recomputes).

ADAPTIVE = "adaptive"
ITERATIVE = "iterative"
GREEDY = "greedy"


@torch.no_grad()
def decode(model, prompt, max_tokens, mask_id, eos, block, mode, threshold=0.9, sub_block=8, max_iterations=32):
    """Greedy-argmax block diffusion. Returns (generated ids, decode forwards (steps + commits), prefill forwards).
    Generation stops after `max_tokens` tokens or at the first EOS."""

    def forward(seq):
        x = torch.tensor([seq])
        return model(x, torch.arange(len(seq)), block_causal_mask(len(seq), block))[0].float()

    seq = list(prompt)
    forwards = prefill = 0
    n_prefill = len(seq) // block * block
    first_token = None
    if n_prefill:
        logits = forward(seq[:n_prefill])
        prefill = 1
        if n_prefill == len(seq):
            first_token = int(logits[-1].argmax())
    generated = []
    while len(generated) < max_tokens:
        start = len(seq) // block * block
        if first_token is not None:
            seq.append(first_token)
            generated.append(first_token)
            if first_token == eos or len(generated) >= max_tokens:
                break
            first_token = None
        known = len(seq) - start                         # prompt tail or first token of the block
        canvas = seq[start:] + [mask_id] * (block - known)
        iteration = 0
        for sub in range(0, block, sub_block) if mode != GREEDY else [0]:
            lo, hi = (max(sub, known), sub + sub_block) if mode != GREEDY else (known, block)
            while any(canvas[j] == mask_id for j in range(lo, hi)):
                logits = forward(seq[:start] + canvas)[start:]
                forwards += 1
                iteration += 1
                probs = logits.softmax(-1)
                masked = [j for j in range(lo, hi) if canvas[j] == mask_id]
                conf = {j: float(probs[j - 1].max()) for j in masked}
                best = {j: int(probs[j - 1].argmax()) for j in masked}
                if mode == GREEDY or iteration >= max_iterations:
                    chosen = masked
                else:
                    t = threshold
                    if mode == ADAPTIVE:
                        t = max(0.5, threshold - 0.4) if iteration == 1 else (
                            max(0.7, threshold - 0.2) if iteration == 2 else threshold)
                    chosen = [j for j in masked if conf[j] > t] or [max(masked, key=lambda j: conf[j])]
                for j in chosen:
                    canvas[j] = best[j]
                # EOS placed with no MASK before it ends generation; no commit pass.
                for j in range(known, block):
                    if canvas[j] == mask_id:
                        break
                    if canvas[j] == eos:
                        generated += canvas[known:j + 1]
                        return generated[:max_tokens], forwards, prefill
        generated += canvas[known:]
        seq = seq[:start] + canvas
        if len(generated) >= max_tokens:
            break
        logits = forward(seq)                             # commit pass: exact K/V; its last row starts the next block
        forwards += 1
        first_token = int(logits[-1].argmax())
    return generated[:max_tokens], forwards, prefill


@torch.no_grad()
def decode_ar(model, prompt, max_tokens, eos):
    """Plain causal greedy decoding (what bitrun's decoder-ar does at temperature 0)."""
    seq = list(prompt)
    out = []
    for _ in range(max_tokens):
        x = torch.tensor([seq])
        nxt = int(model(x, torch.arange(len(seq)), causal_mask(len(seq)))[0, -1].argmax())
        out.append(nxt)
        seq.append(nxt)
        if nxt == eos:
            break
    return out
