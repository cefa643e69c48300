"""Export: the student as a float GGUF whose projection weights are exactly codes * scale, then bitrun's own
`bitrun convert --type i2_s` (bitrun's GgufWriter and I2_S packer, which keeps exact ternary values and their
per-tensor scale) writes the committed model. Then bitrun is checked against the PyTorch student: its logits
(`bitrun perplexity --logits-out`) and its perplexity on the held-out lines."""

import os
import subprocess
import tempfile

import numpy as np
import torch

import gguf_io as g
from modeling import ternary_weight

MASK_TOKEN = "|<MASK>|"
PROJECTIONS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "gate": "ffn_gate", "up": "ffn_up",
               "down": "ffn_down"}


def write_float_gguf(student, teacher_meta, path, block, context_length, name, description):
    s = student.shape
    a = student.ARCH
    w = g.GgufWriter()
    w.add("general.architecture", g.STRING, a)
    w.add("general.name", g.STRING, name)
    w.add("general.description", g.STRING, description)
    w.add("general.license", g.STRING, "MIT")
    for key, value in [("context_length", context_length), ("embedding_length", s.dim), ("block_count", s.n_layer),
                       ("feed_forward_length", s.n_ff), ("attention.head_count", s.n_head),
                       ("attention.head_count_kv", s.n_head_kv), ("rope.dimension_count", s.head_dim),
                       ("vocab_size", s.n_vocab)]:
        w.add("%s.%s" % (a, key), g.U32, value)
    w.add(a + ".rope.freq_base", g.F32, s.rope_base)
    w.add(a + ".attention.layer_norm_rms_epsilon", g.F32, s.rms_eps)

    tokens = list(teacher_meta["tokenizer.ggml.tokens"]) + [MASK_TOKEN]
    assert len(tokens) == s.n_vocab
    w.add("tokenizer.ggml.model", g.STRING, "llama")
    w.add_array("tokenizer.ggml.tokens", g.STRING, tokens)
    w.add_array("tokenizer.ggml.scores", g.F32, list(teacher_meta["tokenizer.ggml.scores"]) + [0.0])
    w.add_array("tokenizer.ggml.token_type", g.I32, list(teacher_meta["tokenizer.ggml.token_type"]) + [3])   # CONTROL
    for key in ("bos_token_id", "eos_token_id", "unknown_token_id"):
        w.add("tokenizer.ggml." + key, g.U32, teacher_meta["tokenizer.ggml." + key])
    w.add("tokenizer.ggml.mask_token_id", g.U32, s.n_vocab - 1)
    w.add("diffusion.block_size", g.U32, block)
    w.add("diffusion.attention", g.STRING, "block-causal")
    w.add("diffusion.shift_logits", g.BOOL, True)

    def f32(t):
        return t.detach().float().numpy()

    w.add_tensor("token_embd.weight", f32(student.tok_embd))
    w.add_tensor("output_norm.weight", f32(student.output_norm))
    w.add_tensor("output.weight", f32(student.output))
    for i, blk in enumerate(student.blocks):
        p = "blk.%d." % i
        for norm in ("attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm"):
            w.add_tensor(p + norm + ".weight", f32(getattr(blk, norm)))
        for attr, tensor in PROJECTIONS.items():
            codes, scale = ternary_weight(getattr(blk, attr).weight.detach().float())
            w.add_tensor(p + tensor + ".weight", (codes * scale).numpy().astype(np.float32))
    w.write(path)


def convert(bitrun, float_path, out_path):
    subprocess.run([bitrun, "convert", float_path, out_path, "--type", "i2_s", "--quiet"], check=True)


def read_logits_dump(path, n_vocab):
    """Lines of `bitrun perplexity --logits-out`: [(ids, logits [n-1, vocab])]."""
    raw = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(raw):
        n = int(np.frombuffer(raw, "<i4", 1, pos)[0])
        pos += 4
        ids = np.frombuffer(raw, "<i4", n, pos).tolist()
        pos += 4 * n
        logits = np.frombuffer(raw, "<f4", (n - 1) * n_vocab, pos).reshape(n - 1, n_vocab)
        pos += 4 * (n - 1) * n_vocab
        out.append((ids, logits))
    return out


@torch.no_grad()
def compare_with_bitrun(bitrun, model_path, student, tok, lines, threads):
    """Runs bitrun's perplexity on `lines` with the logits dump and compares with the student's forward on the
    same tokens: token ids must be identical; reports max |logit difference|, top-1 agreement and both
    perplexities."""
    from modeling import causal_mask
    with tempfile.TemporaryDirectory() as tmp:
        text, dump = os.path.join(tmp, "lines.txt"), os.path.join(tmp, "logits.f32")
        with open(text, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        env = dict(os.environ, BITRUN_LOG_LEVEL="warn")
        res = subprocess.run([bitrun, "perplexity", model_path, text, "--logits-out", dump, "--threads", str(threads)],
                             check=True, capture_output=True, text=True, env=env)
        bitrun_line = res.stdout.strip()
        got = read_logits_dump(dump, student.shape.n_vocab)
    max_diff, agree, rows, nll_py, nll_br, n_tok = 0.0, 0, 0, 0.0, 0.0, 0
    for line, (ids, logits_br) in zip(lines, got):
        mine = tok.encode(line)[:512]
        if mine != ids:
            raise RuntimeError("tokenizer mismatch with bitrun on line %r" % line[:60])
        x = torch.tensor([ids])
        lp = student(x, torch.arange(len(ids)), causal_mask(len(ids)))[0, :-1].double()
        lb = torch.from_numpy(logits_br.copy()).double()
        max_diff = max(max_diff, float((lp - lb).abs().max()))
        agree += int((lp.argmax(-1) == lb.argmax(-1)).sum())
        rows += len(ids) - 1
        tgt = torch.tensor(ids[1:])
        nll_py -= float(lp.log_softmax(-1)[torch.arange(len(tgt)), tgt].sum())
        nll_br -= float(lb.log_softmax(-1)[torch.arange(len(tgt)), tgt].sum())
        n_tok += len(tgt)
    if len(got) != len(lines):
        raise RuntimeError("bitrun scored %d lines, expected %d" % (len(got), len(lines)))
    return {"max_abs_logit_diff": max_diff, "top1_agreement": agree / rows, "rows": rows,
            "python_ppl": float(np.exp(nll_py / n_tok)), "bitrun_ppl": float(np.exp(nll_br / n_tok)),
            "bitrun_output": bitrun_line}
