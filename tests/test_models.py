"""The four models: exact sizes, shapes, tracing (what the CUDA and Neuron paths do), weights files."""
import json
import subprocess
import sys
import warnings

import pytest
import torch

from workloads.config import WorkloadConfig
from workloads.models import REGISTRY, WeightsError, describe_models, get_model, load_weights

# Small sizes keep the suite fast; the defaults (seq 128, 800x800) are only described, not run.
SMALL = {"seq_len": 16, "image_size": 64}
EXPECTED_PARAMS = {"cnn": 3_165_826, "resnet50": 25_557_032, "bert": 108_311_810, "craft": 20_770_466}
EXPECTED_OUTPUT = {"cnn": (2, 10), "resnet50": (2, 1000), "bert": (2, 2), "craft": (2, 32, 32, 2)}


def small_config(name: str, **overrides) -> WorkloadConfig:
    return WorkloadConfig(model=name, **{**SMALL, **overrides})


@pytest.fixture(scope="module")
def built():
    """Each model built once for the module (bert and craft take a second or two each)."""
    return {name: REGISTRY[name].build(small_config(name)) for name in REGISTRY}


def first_output(output):
    return output[0] if isinstance(output, tuple) else output


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_model_has_the_reference_parameter_count_and_is_in_eval_mode(name, built):
    model = built[name]
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[name] == get_model(name).params
    assert not model.training


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")  # still what torch.neuron uses
@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_traced_model_gives_the_eager_output_shape_and_values(name, built):
    model, config = built[name], small_config(name)
    inputs = get_model(name).example_inputs(2, config)
    with torch.no_grad():
        eager = model(*inputs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, inputs)
        # Fresh inputs of the same shape prove the trace did not freeze the example values.
        other = tuple(t.flip(0) for t in inputs)
        traced_out, eager_out = traced(*other), model(*other)
    # A TracerWarning means Python control flow depended on a tensor: the graph would be wrong.
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    if name == "bert":
        assert isinstance(eager, tuple), "bert must return a tuple for torch.neuron.trace"
    assert tuple(first_output(eager).shape) == EXPECTED_OUTPUT[name]
    assert torch.isfinite(first_output(eager)).all()
    torch.testing.assert_close(first_output(traced_out), first_output(eager_out))


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_example_inputs_are_deterministic_and_sized_by_batch(name):
    spec, config = get_model(name), small_config(name)
    a, b = spec.example_inputs(3, config), spec.example_inputs(3, config)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(t.shape[0] == 3 for t in a)


def test_bert_inputs_look_like_tokenized_sentence_pairs():
    input_ids, attention_mask, token_type_ids = get_model("bert").example_inputs(4, small_config("bert"))
    assert input_ids.dtype == attention_mask.dtype == token_type_ids.dtype == torch.int64
    assert input_ids.shape == (4, 16)
    assert (input_ids[:, 0] == 101).all()  # [CLS]
    assert ((input_ids == 0) == (attention_mask == 0)).all()  # padding exactly where masked
    assert (token_type_ids * (1 - attention_mask) == 0).all()  # no segment id on padding
    assert token_type_ids.any(), "second sentence segment missing"


def test_bert_padding_does_not_change_the_prediction(built):
    """The attention mask really masks: extra padding leaves the logits unchanged."""
    model = built["bert"]
    input_ids, mask, types = get_model("bert").example_inputs(1, small_config("bert"))
    padded = [torch.cat([t, torch.zeros(1, 8, dtype=t.dtype)], dim=1) for t in (input_ids, mask, types)]
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids, mask, types)[0], model(*padded)[0])


def small_bert(fused: bool) -> torch.nn.Module:
    """A 2-layer BERT (full vocabulary, so example inputs fit) with one attention path forced."""
    from workloads.models import bert

    if fused and not bert.FUSED_ATTENTION:
        pytest.skip(f"torch {torch.__version__} has no scaled_dot_product_attention")
    config = bert.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                             fused_attention=fused)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # both paths get the same weights
        return bert.BertForSequenceClassification(config).eval()


def test_bert_fused_and_explicit_attention_give_the_same_logits():
    """scaled_dot_product_attention (torch >= 2) and the explicit matmul-softmax path (torch 1.x)
    compute the same thing: equal logits within fp32 tolerance, padding included."""
    fused, explicit = small_bert(True), small_bert(False)
    assert all(torch.equal(a, b) for a, b in zip(fused.state_dict().values(), explicit.state_dict().values()))
    assert all(m.fused_attention for m in fused.modules() if hasattr(m, "fused_attention"))
    assert not any(m.fused_attention for m in explicit.modules() if hasattr(m, "fused_attention"))
    inputs = get_model("bert").example_inputs(4, small_config("bert"))
    assert (inputs[1] == 0).any(), "some rows are padded, so the mask takes part"
    with torch.no_grad():
        torch.testing.assert_close(fused(*inputs)[0], explicit(*inputs)[0], rtol=1e-4, atol=1e-5)


def test_bert_default_attention_is_fused_exactly_when_torch_has_it(built):
    from workloads.models import bert

    assert bert.FUSED_ATTENTION == hasattr(torch.nn.functional, "scaled_dot_product_attention")
    paths = {m.fused_attention for m in built["bert"].modules() if hasattr(m, "fused_attention")}
    assert paths == {bert.FUSED_ATTENTION}


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "explicit"])
def test_bert_attention_paths_trace_cleanly_and_stay_finite_in_half_precision(fused):
    model = small_bert(fused)
    inputs = get_model("bert").example_inputs(2, small_config("bert"))
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, inputs)
        torch.testing.assert_close(traced(*inputs)[0], model(*inputs)[0])
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    assert ("scaled_dot_product_attention" in traced.inlined_graph.str()) == fused
    for dtype in (torch.bfloat16, torch.float16):  # the additive mask (-10000) stays finite there
        with torch.no_grad():
            assert torch.isfinite(model.to(dtype)(*inputs)[0]).all(), dtype


def test_builds_are_seeded_so_two_builds_agree():
    config = small_config("cnn")
    a, b = get_model("cnn").build(config), get_model("cnn").build(config)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_weights_round_trip_through_a_file(tmp_path):
    """A state dict saved from one model loads with --weights and reproduces its outputs."""
    spec, config = get_model("cnn"), small_config("cnn")
    trained = spec.build(config)
    with torch.no_grad():
        for p in trained.parameters():
            p.mul_(1.5)  # differ from the seeded random weights a fresh build would have
    path = tmp_path / "cnn.pt"
    torch.save(trained.state_dict(), path)
    loaded = spec.build(small_config("cnn", weights=str(path)))
    inputs = spec.example_inputs(2, config)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs), trained(*inputs))
        assert not torch.allclose(spec.build(config)(*inputs), trained(*inputs))


def test_weights_in_torch_saves_legacy_format_load(tmp_path, built):
    torch.save(built["cnn"].state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    load_weights(get_model("cnn").build(small_config("cnn")), tmp_path / "legacy.pt")


def test_weights_saved_from_data_parallel_load_without_the_module_prefix(tmp_path, built):
    state = {"module." + k: v for k, v in built["craft"].state_dict().items()}
    torch.save(state, tmp_path / "craft.pth")
    load_weights(get_model("craft").build(small_config("craft")), tmp_path / "craft.pth")


def test_weights_of_another_model_are_refused_naming_the_mismatches(tmp_path, built):
    path = tmp_path / "cnn.pt"
    torch.save(built["cnn"].state_dict(), path)
    with pytest.raises(WeightsError) as error:
        load_weights(built["resnet50"], path)
    message = str(error.value)
    assert "\n" not in message
    assert "does not fit ResNet" in message
    assert "missing keys: bn1.weight" in message and "unexpected keys: conv1.bias" in message
    assert "conv1.weight [32, 1, 3, 3] vs [64, 3, 7, 7]" in message


def test_weights_with_a_wrong_shape_name_the_tensor(tmp_path, built):
    state = dict(built["cnn"].state_dict())
    state["fc2.weight"] = torch.zeros(5, 1000)
    torch.save(state, tmp_path / "five_classes.pt")
    with pytest.raises(WeightsError, match=r"wrong shape.*fc2\.weight \[5, 1000\] vs \[10, 1000\]"):
        load_weights(built["cnn"], tmp_path / "five_classes.pt")


def test_weights_files_that_are_not_state_dicts_are_refused(tmp_path, built):
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="holds a list, not a state dict"):
        load_weights(built["cnn"], tmp_path / "list.pt")
    torch.save({"epoch": 3, "state_dict": built["cnn"].state_dict()}, tmp_path / "checkpoint.pt")
    with pytest.raises(WeightsError, match="not a plain state dict: 'epoch' holds a int"):
        load_weights(built["cnn"], tmp_path / "checkpoint.pt")
    (tmp_path / "notes.txt").write_text("101 things to try\n")  # torch itself says only "101"
    with pytest.raises(WeightsError, match=r"notes.txt is not a PyTorch file \(torch.save"):
        load_weights(built["cnn"], tmp_path / "notes.txt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty.pt is empty"):
        load_weights(built["cnn"], tmp_path / "empty.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 cut short")  # looks like torch.save's zip, is not
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_weights(built["cnn"], tmp_path / "cut.pt")
    with pytest.raises(WeightsError, match="not found"):
        get_model("cnn").build(small_config("cnn", weights=str(tmp_path / "absent.pt")))


def test_whole_pickled_models_are_refused_rather_than_unpickled(tmp_path, built):
    """weights_only: a file that would need arbitrary unpickling (here a whole module) is not run."""
    torch.save(built["cnn"], tmp_path / "whole_model.pt")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_weights(built["cnn"], tmp_path / "whole_model.pt")


@pytest.mark.parametrize("size", [800 - 16, 50])
def test_craft_image_size_must_be_a_multiple_of_32(size):
    with pytest.raises(ValueError, match=f"multiple of 32.*got {size}"):
        get_model("craft").example_inputs(1, small_config("craft", image_size=size))


def test_bert_sequence_longer_than_its_position_table_is_refused():
    with pytest.raises(ValueError, match="between 1 and 512"):
        get_model("bert").example_inputs(1, small_config("bert", seq_len=513))


def test_the_registry_limit_is_berts_position_table():
    from workloads.models.bert import BertConfig

    assert get_model("bert").max_seq_len == BertConfig.max_position_embeddings


def test_default_sizes_are_the_reference_inputs():
    assert get_model("bert").example_inputs(1, WorkloadConfig(model="bert"))[0].shape == (1, 128)
    assert get_model("resnet50").example_inputs(1, WorkloadConfig())[0].shape == (1, 3, 224, 224)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(KeyError, match="choose from cnn, resnet50, bert, craft"):
        get_model("gpt2")


def test_describe_models_gives_counts_inputs_and_pipeline_rule():
    described = {m["name"]: m for m in describe_models()}
    assert list(described) == ["cnn", "resnet50", "bert", "craft"]
    assert {n: m["params"] for n, m in described.items()} == EXPECTED_PARAMS
    # 4*round(params/2e7) before clamping: the small CNN gives 0, clamped to 1 by the runtime.
    assert {n: m["pipeline_cores_rule"] for n, m in described.items()} == {
        "cnn": 0, "resnet50": 4, "bert": 20, "craft": 4}
    assert described["bert"]["defaults"] == {"seq_len": 128}
    assert described["craft"]["defaults"] == {"image_size": 800}
    assert "[B,1,28,28]" in described["cnn"]["input"]
    json.dumps(described)  # goes straight into `--list --json`


def test_registry_imports_without_torch(child_env):
    """Describing the models must not cost a torch import (the torch-free parent may ask)."""
    code = ("import sys, workloads.models as m; m.describe_models(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bert_request_pool_pads_each_request_to_the_smallest_bucket_and_masks_the_padding():
    from workloads.buckets import padding_ratio, parse_seq_len_dist
    from workloads.models import bert

    config = WorkloadConfig(model="bert", seq_len_dist="uniform:4-48", buckets="8,16,48")
    pool = get_model("bert").request_pool(2, config)
    assert pool.buckets == [8, 16, 48] and [e[0].shape for e in pool.examples] == [(2, 8), (2, 16), (2, 48)]
    assert len(pool.requests) == bert.POOL_ROWS // 2
    for bucket, (input_ids, mask, types), real, pad in pool.requests:
        lengths = mask.sum(dim=1)
        assert input_ids.shape == (2, pool.buckets[bucket]) and real == int(lengths.sum())
        assert pad == 2 * pool.buckets[bucket] - real and int(lengths.min()) >= 4
        assert bucket == 0 or int(lengths.max()) > pool.buckets[bucket - 1]  # no smaller bucket holds it
        assert ((input_ids == 0) == (mask == 0)).all() and (types * (1 - mask) == 0).all()
    measured = sum(r[3] for r in pool.requests) / sum(r[2] for r in pool.requests)
    # 1024 drawn requests land near the exact expectation for this mix (its standard error is about 0.01).
    assert measured == pytest.approx(padding_ratio(parse_seq_len_dist("uniform:4-48"), [8, 16, 48], batch=2), abs=0.05)


def test_bert_without_variable_length_flags_keeps_its_one_fixed_input():
    assert get_model("bert").request_pool(1, small_config("bert")) is None
    assert get_model("cnn").request_pool(1, small_config("cnn")) is None
    pool = get_model("bert").request_pool(1, WorkloadConfig(model="bert", seq_len=32, seq_len_dist="uniform:1-32"))
    assert pool.buckets == [32]  # without --buckets every request is padded to --seq-len
