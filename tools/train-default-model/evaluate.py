"""Evaluation with bitrun's protocols: perplexity over held-out lines (each stripped line scored alone as BOS +
line, at most 512 tokens, mean NLL over all predicted tokens), greedy samples, and diffusion decoding speed."""

import math

import torch

import diffusion
from modeling import causal_mask


@torch.no_grad()
def perplexity(model_logits, tok, lines, max_tokens=512):
    """model_logits(tokens [1, t]) -> logits [1, t, vocab] under causal attention. Returns (mean NLL, ppl, n)."""
    total, count = 0.0, 0
    for line in lines:
        ids = tok.encode(line)[:max_tokens]
        if len(ids) < 2:
            continue
        logp = model_logits(torch.tensor([ids]))[0].double().log_softmax(-1)
        total -= float(logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum())
        count += len(ids) - 1
    return total / count, math.exp(total / count), count


def student_logits(student):
    return lambda x: student(x, torch.arange(x.shape[1]), causal_mask(x.shape[1]))


def teacher_logits(teacher):
    return lambda x: teacher(x)


# Diffusion settings shown for every prompt: the three modes at the default threshold 0.9 (configs/default.yaml),
# and adaptive at lower thresholds, to show what confidence buys in tokens per forward.
DIFFUSION_SETTINGS = [(diffusion.GREEDY, 0.9), (diffusion.ITERATIVE, 0.9), (diffusion.ADAPTIVE, 0.9),
                      (diffusion.ADAPTIVE, 0.7), (diffusion.ADAPTIVE, 0.5)]


def setting_name(mode, threshold):
    return mode if mode == diffusion.GREEDY else "%s t=%g" % (mode, threshold)


def samples(student, tok, prompts, max_tokens, mask_id, block, sub_block=8):
    """Greedy AR text and each diffusion setting's text and tokens per decode forward (steps and commit passes;
    prefill not counted), per prompt."""
    out = []
    for prompt in prompts:
        ids = tok.encode(prompt)
        entry = {"prompt": prompt, "ar": tok.decode(ids + diffusion.decode_ar(student, ids, max_tokens, tok.eos))}
        for mode, threshold in DIFFUSION_SETTINGS:
            gen, forwards, _ = diffusion.decode(student, ids, max_tokens, mask_id, tok.eos, block, mode, threshold,
                                               sub_block)
            entry[setting_name(mode, threshold)] = {"text": tok.decode(ids + gen), "tokens": len(gen),
                                                    "forwards": forwards, "tokens_per_forward": len(gen) / max(forwards, 1)}
        out.append(entry)
    return out
