"""One-line progress display: step, losses, tokens per second, elapsed time and ETA, rewritten in place on a
terminal and printed every `every` steps otherwise (so logs stay readable)."""

import sys
import time


def _clock(seconds):
    seconds = int(seconds)
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


class Progress:
    def __init__(self, name, total_steps, every=20, stream=sys.stderr):
        self.name, self.total, self.every, self.stream = name, total_steps, every, stream
        self.start = time.time()
        self.tokens = 0
        self.tty = stream.isatty()

    def update(self, step, tokens, **values):
        """`step` is 1-based; `tokens` the tokens processed by this step; `values` shown as name=value."""
        self.tokens += tokens
        if not (self.tty or step % self.every == 0 or step == self.total):
            return
        elapsed = time.time() - self.start
        eta = elapsed / step * (self.total - step)
        shown = " ".join("%s %.4f" % kv for kv in values.items())
        line = "[%s] step %d/%d  %s  %.0f tok/s  elapsed %s  ETA %s" % (
            self.name, step, self.total, shown, self.tokens / max(elapsed, 1e-9), _clock(elapsed), _clock(eta))
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if step == self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def elapsed(self):
        return time.time() - self.start


def log(message):
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
