#!/usr/bin/python3
"""Trains bitrun's built-in default model and writes it with bitrun's converter.

  stories260K.gguf (float teacher) --distillation--> ternary bitnet-b1.58 student --block diffusion on its own
  greedy trajectories (stages 2-4)--> student with a mask token --> float GGUF (exact ternary values) --bitrun convert --type i2_s--> models/default.gguf

Every stage is seeded; the result depends only on the arguments (and on the thread count: float reductions
are ordered differently with more threads). See README.md in this directory."""

import argparse
import json
import os
import random
import sys
import time

# Set before torch starts OpenMP: on a machine shared with other jobs, spinning OpenMP workers that lose their
# core make every parallel op wait (measured here: 2 threads 4x slower than 1 under load; passive: 1.1x faster).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data  # noqa: E402
import evaluate  # noqa: E402
import export  # noqa: E402
import export_hf  # noqa: E402
import gguf_io  # noqa: E402
import stages  # noqa: E402
from modeling import Shape, Student, Teacher  # noqa: E402
from progress import log  # noqa: E402
from spm_tokenizer import SpmTokenizer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
ALL_STAGES = ("ar", "diffusion", "refine", "redistill", "export")
SHARED = os.environ.get("BITRUN_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default=os.path.join(SHARED, "models", "stories260K.gguf"))
    p.add_argument("--text", default=os.path.join(SHARED, "text", "tinystories-valid.txt"))
    p.add_argument("--out", default=os.path.join(REPO, "models", "default.gguf"))
    p.add_argument("--work", default=os.path.join(REPO, "build", "train-default-model"),
                   help="checkpoints, the float GGUF and the report (default: build/train-default-model)")
    p.add_argument("--bitrun", default=os.path.join(REPO, "build", "bin", "bitrun"))
    p.add_argument("--hf-out", default=os.path.join(REPO, "tests", "data", "default-model-hf"),
                   help="the student as a Hugging Face style folder (safetensors) for `bitrun import` (export stage)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--heldout-lines", type=int, default=40, help="first N non-empty lines: evaluation only")
    # Student shape: I2_S packs rows of 128-weight blocks, so every projection input (dim, n_ff) is a multiple
    # of 128.
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=384)
    p.add_argument("--context", type=int, default=512, help="context_length written to the model")
    # Data.
    p.add_argument("--teacher-stories", type=int, default=1500)
    p.add_argument("--teacher-temperature", type=float, default=1.0)
    # Stage 1.
    p.add_argument("--ar-steps", type=int, default=1500)
    p.add_argument("--ar-batch", type=int, default=8)
    p.add_argument("--ar-seq", type=int, default=256)
    p.add_argument("--ar-lr", type=float, default=3e-3)
    p.add_argument("--ar-long-steps", type=int, default=150, help="last steps in windows of --context tokens")
    # Stage 2.
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--diffusion-steps", type=int, default=2000)
    p.add_argument("--diffusion-batch", type=int, default=8)
    p.add_argument("--diffusion-seq", type=int, default=128, help="real-text windows of the causal objective")
    p.add_argument("--diffusion-lr", type=float, default=2e-3)
    p.add_argument("--entropy-weight", type=float, default=1.0, help="certainty forcing's entropy term")
    p.add_argument("--trajectories", type=int, default=6000, help="self-distillation trajectories")
    p.add_argument("--trajectory-length", type=int, default=160, help="tokens from position 0, a multiple of "
                   "--block-size")
    p.add_argument("--prompt-tokens", default="2,24", help="trajectory prompt lengths (BOS included): min,max")
    # Stage 3: the same objective again from the stage-2 checkpoint, at a lower learning rate (a second cosine).
    p.add_argument("--refine-steps", type=int, default=1200)
    p.add_argument("--refine-lr", type=float, default=1e-3)
    # Stage 4: trajectories re-made by the refined student, then the stage-3 objective on them (same steps, lr).
    p.add_argument("--redistill-steps", type=int, default=1200)
    p.add_argument("--redistill-rounds", type=int, default=2,
                   help="stage 4 rounds, each on the trajectories of the previous round's student")
    p.add_argument("--ce-weight", type=float, default=0.5, help="weight of text cross-entropy next to the KL")
    p.add_argument("--stages", default=",".join(ALL_STAGES),
                   help="comma-separated subset; a later stage alone starts from the previous one's checkpoint")
    return p.parse_args()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_documents(args, tok, teacher, train_lines):
    """Training stories from the text plus teacher-sampled stories (cached in the work dir per seed and count)."""
    docs = [data.encode_story(tok, s) for s in data.group_stories(train_lines)]
    cache = os.path.join(args.work, "teacher-stories-s%d-n%d-t%g.json" % (args.seed, args.teacher_stories,
                                                                         args.teacher_temperature))
    if os.path.exists(cache):
        sampled = json.load(open(cache))
    else:
        log("sampling %d stories from the teacher (temperature %g)" % (args.teacher_stories, args.teacher_temperature))
        gen = torch.Generator().manual_seed(args.seed + 1)
        start = time.time()
        sampled = data.sample_teacher_stories(
            teacher, tok.bos, tok.eos, args.teacher_stories, 512, args.teacher_temperature, gen,
            progress=lambda done, total: log("  teacher stories %d/%d (%.0f s)" % (done, total, time.time() - start)))
        json.dump(sampled, open(cache, "w"))
    log("training text: %d TinyStories stories (%d tokens) + %d teacher stories (%d tokens)" % (
        len(docs), sum(map(len, docs)), len(sampled), sum(map(len, sampled))))
    return docs + sampled


def load_trajectories(args, student, documents, tok, report, made_by="stage1", regenerate=None):
    """The greedy continuations of training-story openings by `student` (the stage-1 student for stage 2, the
    refined one for stage 4), cached in the work dir, keyed by the arguments that decide them: the
    self-distillation targets. They are made again when the student that makes them was trained in this run."""
    if args.trajectory_length % args.block_size:
        sys.exit("train.py: --trajectory-length must be a multiple of --block-size")
    lo, hi = (int(v) for v in args.prompt_tokens.split(","))
    cache = os.path.join(args.work, "trajectories-s%d-n%d-l%d-p%d-%d%s.pt" % (
        args.seed, args.trajectories, args.trajectory_length, lo, hi, "" if made_by == "stage1" else "-" + made_by))
    if regenerate is None:
        regenerate = "ar" in args.stages.split(",")
    if os.path.exists(cache) and not regenerate:
        trajectories, prompt_lengths = torch.load(cache)
    else:
        log("generating %d greedy trajectories of %d tokens with the %s student" % (
            args.trajectories, args.trajectory_length, made_by))
        start = time.time()
        student.eval()
        prompts = data.trajectory_prompts(documents, args.trajectories, lo, hi, args.seed + 8)
        trajectories, prompt_lengths = data.greedy_trajectories(
            student, prompts, args.trajectory_length + 1, tok.eos,
            progress=lambda done, total: log("  trajectories %d/%d (%.0f s)" % (done, total, time.time() - start)))
        report["trajectory_seconds_" + made_by] = time.time() - start
        torch.save((trajectories, prompt_lengths), cache)
    student.train()
    return trajectories, prompt_lengths


def refine(args, student, distiller, documents, trajectories, mask_id, steps, seed):
    """More steps of the stage-2 objective at --refine-lr (a new warm-up and cosine); returns the seconds."""
    seed_everything(seed)
    stream = data.WindowStream(documents, args.diffusion_seq, seed + 1)
    cfg = {"steps": steps, "batch": args.diffusion_batch, "lr": args.refine_lr, "warmup": 20, "weight_decay": 0.05,
           "ce_weight": args.ce_weight, "diffusion_weight": 1.0, "entropy_weight": args.entropy_weight}
    gen = torch.Generator().manual_seed(seed + 2)
    return stages.run_diffusion_stage(student, distiller, stream, *trajectories, cfg, mask_id, args.block_size, gen)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    unknown = set(args.stages.split(",")) - set(ALL_STAGES)
    if unknown:
        sys.exit("train.py: unknown stage(s) %s (stages: %s)" % (", ".join(sorted(unknown)), ", ".join(ALL_STAGES)))
    wanted = tuple(s for s in ALL_STAGES if s in args.stages.split(","))
    t_start = time.time()
    # A run of later stages alone keeps the earlier stages' numbers (e.g. their training time).
    report_path = os.path.join(args.work, "report.json")
    report = json.load(open(report_path)) if os.path.exists(report_path) and wanted != ALL_STAGES else {}
    report["args"] = vars(args)

    meta, tensors = gguf_io.read_gguf(args.teacher)
    teacher = Teacher(meta, tensors)
    tok = SpmTokenizer.from_gguf_metadata(meta)
    mask_id = teacher.shape.n_vocab          # the new control token |<MASK>| goes after the teacher's vocab
    shape = Shape(n_vocab=teacher.shape.n_vocab + 1, dim=args.dim, n_layer=args.layers, n_head=args.heads,
                  n_head_kv=args.kv_heads, n_ff=args.ffn)
    lines = data.nonempty_lines(args.text)
    heldout, train_lines = data.split_heldout(lines, args.heldout_lines)

    seed_everything(args.seed)
    student = Student(shape)
    distiller = stages.Distiller(teacher, shape.n_vocab, tok.bos, tok.eos)
    ckpt_ar, ckpt_diff = os.path.join(args.work, "student-ar.pt"), os.path.join(args.work, "student-diffusion.pt")
    report["shape"] = vars(shape)
    report["ternary_parameters"] = sum(b.weight.numel() for blk in student.blocks for b in
                                       (blk.q, blk.k, blk.v, blk.o, blk.gate, blk.up, blk.down))

    documents = trajectories = None
    if wanted != ("export",):
        documents = load_documents(args, tok, teacher, train_lines)
    if "ar" in wanted:
        seed_everything(args.seed + 2)
        stream = data.WindowStream(documents, args.ar_seq, args.seed + 3)
        long_stream = data.WindowStream(documents, args.context, args.seed + 7)
        cfg = {"steps": args.ar_steps, "batch": args.ar_batch, "lr": args.ar_lr, "warmup": 100,
               "weight_decay": 0.05, "ce_weight": args.ce_weight, "long_steps": args.ar_long_steps}
        log("stage 1: AR distillation, %d steps of %d x %d tokens, the last %d in windows of %d" % (
            args.ar_steps, args.ar_batch, args.ar_seq, args.ar_long_steps, args.context))
        report["ar_seconds"] = stages.run_ar_stage(student, distiller, stream, long_stream, cfg)
        torch.save(student.state_dict(), ckpt_ar)
    else:
        student.load_state_dict(torch.load(ckpt_ar))
    student.eval()
    report["ppl_after_ar"] = evaluate.perplexity(evaluate.student_logits(student), tok, heldout)[1]
    log("held-out perplexity after stage 1: %.4f" % report["ppl_after_ar"])

    if "diffusion" in wanted:
        seed_everything(args.seed + 4)
        stream = data.WindowStream(documents, args.diffusion_seq, args.seed + 5)
        cfg = {"steps": args.diffusion_steps, "batch": args.diffusion_batch, "lr": args.diffusion_lr, "warmup": 50,
               "weight_decay": 0.05, "ce_weight": args.ce_weight, "diffusion_weight": 1.0}
        log("stage 2: block diffusion (block %d), %d steps of %d x %d tokens" % (
            args.block_size, args.diffusion_steps, args.diffusion_batch, args.diffusion_seq))
        cfg["entropy_weight"] = args.entropy_weight
        trajectories = load_trajectories(args, student, documents, tok, report)
        gen = torch.Generator().manual_seed(args.seed + 6)
        report["diffusion_seconds"] = stages.run_diffusion_stage(student, distiller, stream, *trajectories, cfg,
                                                                 mask_id, args.block_size, gen)
        torch.save(student.state_dict(), ckpt_diff)
    elif os.path.exists(ckpt_diff) and ("refine" in wanted or "export" in wanted):
        student.load_state_dict(torch.load(ckpt_diff))

    ckpt_refined = os.path.join(args.work, "student-refined.pt")
    if "refine" in wanted:
        if trajectories is None:   # the stage-1 student's, from the cache (never the stage-2 student's)
            trajectories = load_trajectories(args, student, documents, tok, report)
        log("stage 3: refinement, %d more steps at peak lr %g" % (args.refine_steps, args.refine_lr))
        report["refine_seconds"] = refine(args, student, distiller, documents, trajectories, mask_id,
                                          args.refine_steps, args.seed + 9)
        torch.save(student.state_dict(), ckpt_refined)
    elif os.path.exists(ckpt_refined) and ("redistill" in wanted or "export" in wanted):
        student.load_state_dict(torch.load(ckpt_refined))

    ckpt_redistilled = os.path.join(args.work, "student-redistilled.pt")
    if "redistill" in wanted:
        # Round k makes the trajectories with the student of round k - 1 (the refined one for round 1) and trains on
        # them; each round's checkpoint is kept, so a run with more rounds resumes after the last one it finds
        # (unless an earlier stage ran in the same invocation).
        first = 1
        for k in range(args.redistill_rounds - 1, 0, -1):
            ckpt = os.path.join(args.work, "student-redistilled-r%d.pt" % k)
            if "refine" not in wanted and os.path.exists(ckpt):
                student.load_state_dict(torch.load(ckpt))
                first = k + 1
                log("stage 4: resuming after round %d (%s)" % (k, ckpt))
                break
        for k in range(first, args.redistill_rounds + 1):
            made_by = "refined" if k == 1 else "redistilled-r%d" % (k - 1)
            trajectories = load_trajectories(args, student, documents, tok, report, made_by=made_by,
                                             regenerate="refine" in wanted or k > first)
            log("stage 4, round %d of %d: self-distillation on the %s student's own trajectories, %d steps at peak "
                "lr %g" % (k, args.redistill_rounds, made_by, args.redistill_steps, args.refine_lr))
            report["redistill_seconds" + ("" if k == 1 else "_r%d" % k)] = refine(
                args, student, distiller, documents, trajectories, mask_id, args.redistill_steps,
                args.seed + 12 + 3 * (k - 1))
            torch.save(student.state_dict(), os.path.join(args.work, "student-redistilled-r%d.pt" % k))
        torch.save(student.state_dict(), ckpt_redistilled)
    elif "export" in wanted and os.path.exists(ckpt_redistilled):
        student.load_state_dict(torch.load(ckpt_redistilled))
    student.eval()

    teacher_nll, teacher_ppl, n_tok = evaluate.perplexity(evaluate.teacher_logits(teacher), tok, heldout)
    student_nll, student_ppl, _ = evaluate.perplexity(evaluate.student_logits(student), tok, heldout)
    report.update(teacher_ppl=teacher_ppl, student_ppl=student_ppl, heldout_tokens=n_tok)
    log("held-out perplexity (%d tokens): teacher %.4f, student %.4f" % (n_tok, teacher_ppl, student_ppl))
    report["samples"] = evaluate.samples(student, tok, ["", "Once upon a time", "Tom and his dog"], 96, mask_id,
                                         args.block_size)
    for s in report["samples"]:
        log("--- prompt %r\nAR: %s" % (s["prompt"], s["ar"]))
        for mode, threshold in evaluate.DIFFUSION_SETTINGS:
            name = evaluate.setting_name(mode, threshold)
            log("%s (%.2f tokens/forward): %s" % (name, s[name]["tokens_per_forward"], s[name]["text"]))

    if "export" in wanted:
        float_path = os.path.join(args.work, "default-f32.gguf")
        export.write_float_gguf(student, meta, float_path, args.block_size, args.context,
                                "bitrun-default-stories-b1.58",
                                "bitrun's built-in default model: a ternary BitNet b1.58 student distilled from "
                                "stories260K (Karpathy, MIT) and trained for block diffusion (tools/train-default-model)")
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        export.convert(args.bitrun, float_path, args.out)
        export_hf.write_hf_folder(student, meta, args.hf_out, args.block_size, args.context, export.MASK_TOKEN)
        log("wrote %s (the same model as a safetensors folder, for bitrun import)" % args.hf_out)
        check = export.compare_with_bitrun(args.bitrun, args.out, student, tok, heldout, args.threads)
        report["bitrun_check"] = check
        log("bitrun vs PyTorch on the held-out lines: max |logit diff| %.2e, top-1 agreement %.4f over %d rows; "
            "perplexity bitrun %.4f, PyTorch %.4f" % (check["max_abs_logit_diff"], check["top1_agreement"],
                                                     check["rows"], check["bitrun_ppl"], check["python_ppl"]))
        log("wrote %s (%d bytes)" % (args.out, os.path.getsize(args.out)))

    report["seconds_this_run"] = time.time() - t_start
    with open(report_path, "w") as f:
        json.dump(report, f, indent=1)
    log("done in %.1f min; report: %s" % (report["seconds_this_run"] / 60, report_path))


if __name__ == "__main__":
    main()
