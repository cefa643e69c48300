"""Export of the student as a Hugging Face style checkpoint folder, the form trained BitNet and diffusion models
ship in and `bitrun import` reads: config.json, model.safetensors, tokenizer.json, tokenizer_config.json.

Projection weights are written as the official BitNet b1.58 release packs them (U8, four 2-bit codes a byte along
the output dimension, transformers' integrations/bitnet.py order) with a per-tensor weight_scale that divides
(1 / absmean); the scale is F64 so that 1 / weight_scale gives back the float scale bit for bit, and the few float
tensors (embedding, output, norms) are F32, so `bitrun import` of this folder writes the same weights as
models/default.gguf. The tokenizer is the teacher's SentencePiece vocabulary in the form Hugging Face writes for
Llama tokenizers: BPE with byte fallback, merges ordered by the merged piece's score."""

import json
import os
import struct

import numpy as np

from modeling import ternary_weight

HF_PROJECTIONS = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
                  "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
HF_NORMS = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
            "attn_sub_norm": "self_attn.attn_sub_norm", "ffn_sub_norm": "mlp.ffn_sub_norm"}
DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("u1"): "U8"}


def pack_ternary(codes):
    """[out, in] int codes in {-1, 0, 1} -> [out / 4, in] uint8: row i * (out / 4) + r in bits 2i of row r."""
    out = codes.shape[0]
    assert out % 4 == 0
    r = out // 4
    u = (codes + 1).astype(np.uint8)
    packed = np.zeros((r, codes.shape[1]), dtype=np.uint8)
    for i in range(4):
        packed |= u[i * r:(i + 1) * r] << (2 * i)
    return packed


def write_safetensors(path, tensors):
    """tensors: name -> numpy array (F32, F64 or U8), written in name order."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        data = a.tobytes()
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)   # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def spm_merges(tokens, scores, types):
    """Merges of a SentencePiece BPE vocabulary as Hugging Face lists them: every split of a normal piece into two
    pieces of the vocabulary, ordered by the merged piece's score (best first), then by the parts' ids."""
    ids = {t: i for i, t in enumerate(tokens)}
    merges = []
    for i, piece in enumerate(tokens):
        if types[i] != 1 or len(piece) < 2:
            continue
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in ids and right in ids:
                merges.append((-scores[i], i, ids[left], ids[right], left, right))
    merges.sort()
    return [[m[4], m[5]] for m in merges]


def tokenizer_files(tokens, scores, types, bos, eos, unk, mask_token):
    special = {bos, eos, unk, len(tokens) - 1}
    added = [{"id": i, "content": tokens[i], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i in sorted(special)]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                            {"type": "Replace", "pattern": {"String": " "},
                                                             "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": tokens[bos], "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": tokens[bos], "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {tokens[bos]: {"id": tokens[bos], "ids": [bos], "tokens": [tokens[bos]]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                      {"type": "ByteFallback"}, {"type": "Fuse"},
                                                      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": tokens[unk], "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": spm_merges(tokens, scores, types)},
    }
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": tokens[bos], "eos_token": tokens[eos],
              "unk_token": tokens[unk], "mask_token": mask_token, "model_max_length": 512,
              "tokenizer_class": "LlamaTokenizer", "clean_up_tokenization_spaces": False}
    return tokenizer, config


def write_hf_folder(student, teacher_meta, out_dir, block, context_length, mask_token):
    s = student.shape
    os.makedirs(out_dir, exist_ok=True)

    def f32(t):
        return t.detach().float().numpy().astype("<f4")

    tensors = {"model.embed_tokens.weight": f32(student.tok_embd), "lm_head.weight": f32(student.output),
               "model.norm.weight": f32(student.output_norm)}
    for i, blk in enumerate(student.blocks):
        p = "model.layers.%d." % i
        for norm, hf in HF_NORMS.items():
            tensors[p + hf + ".weight"] = f32(getattr(blk, norm))
        for attr, hf in HF_PROJECTIONS.items():
            codes, scale = ternary_weight(getattr(blk, attr).weight.detach().float())
            tensors[p + hf + ".weight"] = pack_ternary(codes.numpy().astype(np.int64))
            tensors[p + hf + ".weight_scale"] = np.array([1.0 / float(scale)], dtype="<f8")
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)

    tokens = list(teacher_meta["tokenizer.ggml.tokens"]) + [mask_token]
    scores = list(teacher_meta["tokenizer.ggml.scores"]) + [0.0]
    types = list(teacher_meta["tokenizer.ggml.token_type"]) + [3]
    bos, eos, unk = (int(teacher_meta["tokenizer.ggml." + k]) for k in ("bos_token_id", "eos_token_id", "unknown_token_id"))
    tokenizer, tok_config = tokenizer_files(tokens, scores, types, bos, eos, unk, mask_token)
    config = {"architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2",
              "hidden_size": s.dim, "intermediate_size": s.n_ff, "num_hidden_layers": s.n_layer,
              "num_attention_heads": s.n_head, "num_key_value_heads": s.n_head_kv, "head_dim": s.head_dim,
              "max_position_embeddings": context_length, "vocab_size": s.n_vocab, "rope_theta": s.rope_base,
              "rms_norm_eps": s.rms_eps, "tie_word_embeddings": False, "bos_token_id": bos, "eos_token_id": eos,
              "mask_token_id": s.n_vocab - 1, "block_size": block, "diffusion_attention": "block-causal",
              "shift_logits": True, "torch_dtype": "float32", "_name_or_path": "bitrun-default-stories-b1.58"}
    for name, obj in (("config.json", config), ("tokenizer.json", tokenizer), ("tokenizer_config.json", tok_config)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=1 if name != "tokenizer.json" else None)
            f.write("\n")
