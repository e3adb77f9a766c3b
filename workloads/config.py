"""The workload child's flags, defined once: the child parses them, the parent builds them.

Torch-free, like protocol.py: `neurontui` imports it to start children.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields

from .buckets import DEFAULT_SEQ_LEN, parse_buckets, parse_seq_len_dist
from .copies import parse_copies
from .models import REGISTRY, weights_file_problem

MODELS = tuple(REGISTRY)  # the registry is the one list of models
BACKENDS = ("auto", "cpu", "cuda", "neuron")
MODES = ("single", "dp", "pipeline")
SCENARIOS = ("single-stream", "offline", "server")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class WorkloadConfig:
    model: str = "resnet50"
    backend: str = "auto"
    mode: str = "single"
    batch: int = 1
    concurrency: int = 1
    scenario: str = "single-stream"
    qps: float | None = None  # server scenario: Poisson arrival rate
    duration: float | None = None  # seconds of measured load; None = until stopped
    warmup: float = 1.0  # seconds of unmeasured load before the first window
    window: float = 0.5  # seconds per window event
    precision: str = "fp32"
    channels_last: bool = False
    cuda_graphs: bool = False
    seq_len: int | None = None  # bert
    image_size: int | None = None  # craft
    weights: str | None = None
    pipeline_cores: int | None = None  # None = 4*round(params/2e7) clamped to visible cores
    cores: int | None = None  # how many cores/replicas dp may use; None = all visible
    cache_dir: str | None = None
    until_stable: bool = False  # stop when the last 3 windows agree within 10%
    request_timeout: float | None = None  # seconds; a slower request counts as an error, not a completion
    copies: str | None = None  # "N" or "max": independent loaded copies; None = today's one per replica
    seq_len_dist: str | None = None  # bert: uniform:A-B, normal:MEAN,SD or file:PATH (workloads/buckets.py)
    buckets: str | None = None  # bert: "32,64,128", one traced artifact per length

    def to_argv(self) -> list[str]:
        """Flags for `python -m workloads`, inverse of `from_namespace(build_parser().parse_args())`."""
        argv: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                if value:
                    argv.append(flag)
            elif value is not None:
                argv += [flag, str(value)]
        return argv

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> WorkloadConfig:
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)})

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> WorkloadConfig:
        """Inverse of as_dict(); keys it does not know are ignored."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def validate(self) -> list[str]:
        """Problems a user must fix, one line each (empty when the config is usable)."""
        problems = self.value_problems()
        if self.scenario == "server" and not (self.qps and self.qps > 0):
            problems.append("--scenario server needs --qps R with R > 0")
        return problems + self.capacity_problems() + self.combination_problems()

    def combination_problems(self) -> list[str]:
        """Flags the child would refuse together, refused by the parent first with the same words
        (the child still checks what only it can know, e.g. which backend `auto` became)."""
        problems = []
        spec = REGISTRY.get(self.model)
        if spec is not None:
            problems += spec.size_problems(self)
            if self.channels_last and not spec.convolutional:
                problems.append(f"--channels-last is for convolutional models; {self.model} is not one")
        if self.cuda_graphs and self.backend in ("cpu", "neuron"):
            problems.append("--cuda-graphs needs --backend cuda")
        elif self.cuda_graphs and self.mode == "pipeline":
            problems.append("--cuda-graphs captures one forward; use it with single or dp")
        if self.backend == "neuron" and self.precision != "fp32":
            problems.append(f"--precision {self.precision} on Neuron: compile fp32; "
                            "the Neuron compiler casts matrix math itself")
        return problems

    def capacity_problems(self) -> list[str]:
        """--copies, --seq-len-dist and --buckets against the model and mode they run with."""
        problems = []
        if self.copies is not None and self.mode == "pipeline":
            problems.append("--copies loads whole models; pipeline mode cuts one model into stages: use single or dp")
        if (self.seq_len_dist or self.buckets) and self.model != "bert":
            problems.append(f"--seq-len-dist and --buckets are for bert's variable-length input, not {self.model}")
        elif self.buckets and self.seq_len is not None:
            problems.append("--buckets sets the sequence lengths: drop --seq-len")
        elif self.seq_len_dist and not self.value_problems():
            limit = self.max_seq_len()
            longest = parse_seq_len_dist(self.seq_len_dist).longest()
            if longest is not None and longest > limit:
                problems.append(f"--seq-len-dist {self.seq_len_dist}: length {longest} is longer than the "
                                f"largest padded length {limit} (--buckets or --seq-len)")
            elif longest is None and parse_seq_len_dist(self.seq_len_dist).mean > limit:
                problems.append(f"--seq-len-dist {self.seq_len_dist}: the mean is above the largest padded "
                                f"length {limit} (--buckets or --seq-len)")
        return problems

    def max_seq_len(self) -> int:
        """The length every request is padded to at most: the largest bucket, else --seq-len (128)."""
        if self.buckets:
            return parse_buckets(self.buckets)[-1]
        return self.seq_len or DEFAULT_SEQ_LEN

    def value_problems(self) -> list[str]:
        """The part of validate() about one flag's value alone (an unknown name, a count below 1),
        whatever the other flags: a sweep refuses these up front (a combination that cannot run,
        like server without --qps, is a skipped row of the sweep instead)."""
        problems = []
        for name, allowed in (("model", MODELS), ("backend", BACKENDS), ("mode", MODES),
                              ("scenario", SCENARIOS), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                problems.append(f"unknown {name} {getattr(self, name)!r}: choose from {', '.join(allowed)}")
        for name in ("batch", "concurrency"):
            if getattr(self, name) < 1:
                problems.append(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.duration is not None and self.duration <= 0:
            problems.append(f"--duration must be positive, got {self.duration}")
        if self.pipeline_cores is not None and self.pipeline_cores < 1:
            problems.append(f"--pipeline-cores must be at least 1, got {self.pipeline_cores}")
        if self.weights:
            problem = weights_file_problem(self.weights)
            if problem:
                problems.append(problem)
        for name, parse in (("copies", parse_copies), ("seq_len_dist", parse_seq_len_dist),
                            ("buckets", parse_buckets)):
            if getattr(self, name) is not None:
                try:
                    parse(getattr(self, name))
                except ValueError as exc:
                    problems.append(str(exc))
        return problems


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def checked(parse):
    """An argparse type that keeps the text but refuses what `parse` refuses, with its one line."""
    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    check.__name__ = parse.__name__.replace("parse_", "")  # argparse names the type in its messages
    return check


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    """The workload flags, shared by `python -m workloads` and `neurontui`."""
    d = WorkloadConfig()
    g = parser.add_argument_group("workload")
    g.add_argument("--model", choices=MODELS, default=d.model)
    g.add_argument("--backend", choices=BACKENDS, default=d.backend)
    g.add_argument("--mode", choices=MODES, default=d.mode)
    g.add_argument("--batch", type=positive_int, default=d.batch)
    g.add_argument("--concurrency", type=positive_int, default=d.concurrency, help="requests in flight")
    g.add_argument("--scenario", choices=SCENARIOS, default=d.scenario)
    g.add_argument("--qps", type=positive_float, default=None, help="server scenario arrival rate")
    g.add_argument("--duration", type=positive_float, default=None, help="seconds of measured load")
    g.add_argument("--warmup", type=float, default=d.warmup, help="seconds of load before measuring")
    g.add_argument("--window", type=positive_float, default=d.window, help="seconds per window")
    g.add_argument("--precision", choices=PRECISIONS, default=d.precision)
    g.add_argument("--channels-last", action="store_true", help="channels-last memory format (CUDA, CNNs)")
    g.add_argument("--cuda-graphs", action="store_true", help="capture the forward in a CUDA graph")
    g.add_argument("--seq-len", type=positive_int, default=None, help="bert sequence length (128)")
    g.add_argument("--image-size", type=positive_int, default=None, help="craft image side, multiple of 32 (800)")
    g.add_argument("--weights", default=None, metavar="PATH", help="local state dict (never downloaded)")
    g.add_argument("--pipeline-cores", type=positive_int, default=None)
    g.add_argument("--cores", type=positive_int, default=None, help="cores/replicas for dp")
    g.add_argument("--cache-dir", default=None, metavar="DIR", help="compiled-artifact cache")
    g.add_argument("--until-stable", action="store_true", help="stop once the last 3 windows agree within 10%%")
    g.add_argument("--request-timeout", type=positive_float, default=None, metavar="S",
                   help="a request slower than this counts as an error, not a completion")
    g.add_argument("--copies", type=checked(parse_copies), default=None, metavar="N|max",
                   help="load N independent copies (max: until memory is full) and measure each load")
    g.add_argument("--seq-len-dist", type=checked(parse_seq_len_dist), default=None, metavar="DIST",
                   help="bert: each request's real length from uniform:A-B, normal:MEAN,SD or file:PATH")
    g.add_argument("--buckets", type=checked(parse_buckets), default=None, metavar="L1,L2,...",
                   help="bert: one traced model per length; each request padded to the smallest that holds it")
