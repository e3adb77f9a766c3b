"""The four models: registry, example inputs and safe weight loading.

This module stays torch-free at import time (torch is imported inside the functions that need it),
so `python -m workloads --list --json` and the torch-free parent can describe the models cheaply.
Every model has random weights unless `--weights PATH` names a local state dict: nothing is ever
downloaded.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from workloads.buckets import DEFAULT_SEQ_LEN, MAX_SEQ_LEN
from workloads.rules import pipeline_cores_unclamped

if TYPE_CHECKING:
    import torch

    from workloads.buckets import RequestPool


class ModelSettings(Protocol):
    """The settings a model reads: a WorkloadConfig is one. workloads.config imports this registry
    (its model choices, the size rules), so naming WorkloadConfig here would close a circle."""

    seq_len: int | None
    image_size: int | None
    weights: str | None
    seq_len_dist: str | None
    buckets: str | None

# Random weights are drawn from this seed so two builds of a model (e.g. on CPU and on CUDA) agree.
WEIGHTS_SEED = 0


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the model; the message is one line."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str  # one line for pickers and listings
    params: int  # exact parameter count at default settings
    convolutional: bool  # channels-last makes sense
    input_description: str
    # The size settings this model reads from its settings, at their defaults (not hashed: a dict).
    defaults: dict = field(compare=False)
    module: str  # implementation module with build() and example_inputs(batch, config)
    # Input sizes the model can take, checked by size_problems() in the parent and the child alike.
    max_seq_len: int | None = None  # tokens: the length of the position table
    image_size_multiple: int | None = None  # pixels per side: the stride the decoder must line up with

    def size_problems(self, config: ModelSettings) -> list[str]:
        """The input sizes in `config` this model cannot take, one line each."""
        problems = []
        seq_len = config.seq_len or self.defaults.get("seq_len")
        if self.max_seq_len is not None and seq_len is not None and not 1 <= seq_len <= self.max_seq_len:
            problems.append(f"--seq-len must be between 1 and {self.max_seq_len} for {self.name} "
                            f"(its position table), got {seq_len}")
        size, multiple = config.image_size or self.defaults.get("image_size"), self.image_size_multiple
        if multiple is not None and size is not None and (size < multiple or size % multiple):
            problems.append(f"--image-size must be a positive multiple of {multiple} for {self.name} "
                            f"(the backbone halves it 4 times and the decoder must line up), got {size}; "
                            f"try {max(multiple, round(size / multiple) * multiple)}")
        return problems

    def build(self, config: ModelSettings) -> torch.nn.Module:
        """The model in eval mode with seeded random weights, or config.weights if set."""
        import torch

        impl = importlib.import_module(self.module)
        with torch.random.fork_rng(devices=[]):  # seed the weights without disturbing the caller's RNG
            torch.manual_seed(WEIGHTS_SEED)
            model = impl.build(config)
        if config.weights:
            load_weights(model, config.weights)
        return model.eval()

    def example_inputs(self, batch: int, config: ModelSettings) -> tuple[torch.Tensor, ...]:
        """Deterministic (seeded) inputs of the given batch size; ValueError for an unusable size."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        return importlib.import_module(self.module).example_inputs(batch, config)

    def request_pool(self, batch: int, config: ModelSettings) -> RequestPool | None:
        """Variable-length requests (workloads/buckets.py) if the model has them and the run asks."""
        impl = importlib.import_module(self.module)
        return impl.request_pool(batch, config) if hasattr(impl, "request_pool") else None

    @property
    def pipeline_cores_rule(self) -> int:
        """AWS's rule of thumb for --neuroncore-pipeline-cores, before clamping to [1, cores]."""
        return pipeline_cores_unclamped(self.params)


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("cnn", "small CNN (fast start, smoke test)", 3_165_826, True, "float [B,1,28,28]", {},
                  "workloads.models.cnn"),
        ModelSpec("resnet50", "ResNet-50, 224x224 images", 25_557_032, True, "float [B,3,224,224]", {},
                  "workloads.models.resnet50"),
        ModelSpec("bert", "BERT-base, sequence classification", 108_311_810, False,
                  "int64 input_ids, attention_mask, token_type_ids [B,seq_len]",
                  {"seq_len": DEFAULT_SEQ_LEN}, "workloads.models.bert", max_seq_len=MAX_SEQ_LEN),
        ModelSpec("craft", "CRAFT text detector, large images", 20_770_466, True,
                  "float [B,3,image_size,image_size], image_size a multiple of 32",
                  {"image_size": 800}, "workloads.models.craft", image_size_multiple=32),
    )
}


def get_model(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}: choose from {', '.join(REGISTRY)}") from None


def describe_models() -> list[dict]:
    """One entry per model for `python -m workloads --list --json`."""
    return [
        {
            "name": spec.name,
            "summary": spec.summary,
            "params": spec.params,
            "input": spec.input_description,
            "defaults": dict(spec.defaults),
            "convolutional": spec.convolutional,
            "pipeline_cores_rule": spec.pipeline_cores_rule,
        }
        for spec in REGISTRY.values()
    ]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# torch's weights_only refusal of a class it will not unpickle: "Unsupported global: GLOBAL a.b.C ..."
# (torch >= 2.4) or "Unsupported class a.b.C" (older).
_REFUSED_CLASS = re.compile(r"Unsupported (?:global: GLOBAL|class) ([\w.]+)")


def _load_failure(exc: BaseException) -> str:
    """One plain-text line on why torch.load(weights_only=True) failed.

    torch's own message is several lines with ANSI bold codes, and its first line ("you have two
    options") is cut off from the options, which are about trusting the file anyway.
    """
    text = _ANSI.sub("", str(exc)).strip()
    refused = _REFUSED_CLASS.search(text)
    if refused:
        return (f"it is a pickled object ({refused.group(1).rstrip('.')}), refused because loading it could "
                "run code; save model.state_dict() and pass that file")
    if "WeightsUnpickler error:" in text:  # the detail sits after torch's boilerplate
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# torch.save writes a zip archive (torch >= 1.6) or, in the legacy format, a pickle (protocol 2+
# starts with this opcode byte).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80


def weights_file_problem(path: str | Path) -> str | None:
    """Why `path` cannot be a torch.save file, judged by its first bytes (torch-free: the parent asks
    too); None if it may be one. torch's own error for, say, a text file is a bare "101"."""
    if Path(path).exists() and not Path(path).is_file():  # a directory, or a FIFO that would block the read
        return f"weights file {path} is not a regular file"
    try:
        with open(path, "rb") as file:
            head = file.read(len(_ZIP_MAGIC))
    except FileNotFoundError:
        return f"weights file {path} not found"
    except OSError as exc:
        return f"cannot read weights file {path}: {exc.strerror or exc}"
    if not head:
        return f"weights file {path} is empty"
    if head == _ZIP_MAGIC or head[0] == _PICKLE_PROTO:
        return None
    return (f"weights file {path} is not a PyTorch file (torch.save writes a zip archive or a pickle); "
            "save model.state_dict() with torch.save")


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load a local state dict into `model`, refusing anything that does not fit exactly.

    Only tensors are unpickled (weights_only), so a hostile file cannot run code.
    """
    import torch

    label = type(model).__name__
    problem = weights_file_problem(path)
    if problem:
        raise WeightsError(problem)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise WeightsError(f"cannot read weights file {path} as a state dict: {_load_failure(exc)}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"weights file {path} holds a {type(state).__name__}, not a state dict "
                           "(parameter name -> tensor); save model.state_dict()")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:  # typically a training checkpoint wrapping the state dict
        raise WeightsError(f"weights file {path} is not a plain state dict: {not_tensors[0]!r} holds a "
                           f"{type(state[not_tensors[0]]).__name__}, not a tensor; save model.state_dict()")
    # Checkpoints saved from nn.DataParallel prefix every key with "module." (CRAFT's published ones do).
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}

    expected = model.state_dict()
    # Buffers the model computes itself (e.g. BERT's position ids) may appear in older checkpoints.
    computed = {name for name, _ in model.named_buffers()} - set(expected)
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected and k not in computed]
    wrong_shape = [f"{k} {list(state[k].shape)} vs {list(v.shape)}"
                   for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    for what, names in (("missing keys", missing), ("unexpected keys", unexpected),
                        ("wrong shapes (file vs model)", wrong_shape)):
        if names:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            problems.append(f"{len(names)} {what}: {shown}")
    if problems:
        raise WeightsError(f"weights file {path} does not fit {label}: " + "; ".join(problems))
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
