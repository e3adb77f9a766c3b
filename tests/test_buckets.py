"""Variable-length input, torch-free: length distributions, bucket sets and the padding they cost."""
from __future__ import annotations

import random

import pytest

from workloads.buckets import LengthDistribution, bucket_for, padding_ratio, parse_buckets, parse_seq_len_dist
from workloads.config import WorkloadConfig


def test_padding_ratio_of_a_bucket_set_on_a_uniform_mix():
    mix = parse_seq_len_dist("uniform:16-128")
    # One bucket: every row padded to 128; real lengths average 72, so 56 pad tokens per 72 real ones.
    assert padding_ratio(mix, [128]) == pytest.approx(56 / 72)
    # 17 lengths go to 32, 32 to 64, 64 to 128: mean bucket 10784/113 against the same mean of 72.
    assert padding_ratio(mix, [32, 64, 128]) == pytest.approx(10784 / 113 / 72 - 1)
    assert padding_ratio(mix, list(range(16, 129))) == pytest.approx(0.0, abs=1e-12)


def test_padding_ratio_pads_a_batch_to_its_longest_row():
    ones_and_twos = parse_seq_len_dist("uniform:1-2")
    assert padding_ratio(ones_and_twos, [1, 2], batch=1) == pytest.approx(0.0)
    # Two rows: both are 1 with probability 1/4, else the batch is padded to 2.
    assert padding_ratio(ones_and_twos, [1, 2], batch=2) == pytest.approx((0.25 * 1 + 0.75 * 2) / 1.5 - 1)


def test_file_lengths_are_an_empirical_mix(tmp_path):
    lengths = tmp_path / "lengths.txt"
    lengths.write_text("10\n10\n\n30\n")
    mix = parse_seq_len_dist(f"file:{lengths}")
    assert mix.longest() == 30 and padding_ratio(mix, [16, 32]) == pytest.approx((16 + 16 + 32) / 50 - 1)
    rng = random.Random(1)
    assert {mix.sample(rng, 32) for _ in range(200)} == {10, 30}


def test_normal_draws_stay_within_one_and_the_largest_length():
    mix = parse_seq_len_dist("normal:20,40")
    rng = random.Random(2)
    draws = [mix.sample(rng, 64) for _ in range(2000)]
    assert min(draws) == 1 and max(draws) == 64  # clipped at both ends, not redrawn
    assert sum(mix.pmf(64).values()) == pytest.approx(1.0)
    assert padding_ratio(mix, [64]) > padding_ratio(mix, [16, 32, 64]) > 0


def test_smallest_bucket_that_holds_a_length():
    assert [bucket_for(n, [32, 64, 128]) for n in (1, 32, 33, 128)] == [0, 0, 1, 2]
    with pytest.raises(ValueError):
        bucket_for(129, [32, 64, 128])


@pytest.mark.parametrize("text, words", [
    ("uniform:0-10", "1 <= A <= B"), ("uniform:20-10", "1 <= A <= B"), ("uniform:a-b", "whole numbers"),
    ("normal:64", "MEAN,SD"), ("normal:64,0", "SD > 0"), ("normal:nan,3", "MEAN >= 1"),
    ("poisson:3", "expected uniform:A-B"), ("16-128", "expected uniform:A-B"),
    ("file:/nonexistent/lengths", "cannot read it"),
])
def test_unparseable_length_mixes_are_one_line(text, words):
    with pytest.raises(ValueError, match=words) as caught:
        parse_seq_len_dist(text)
    assert "\n" not in str(caught.value)


def test_a_length_file_with_a_bad_line_names_the_line(tmp_path):
    lengths = tmp_path / "lengths.txt"
    lengths.write_text("12\nabc\n")
    with pytest.raises(ValueError, match="line 2: 'abc'"):
        parse_seq_len_dist(f"file:{lengths}")


@pytest.mark.parametrize("text, words", [
    ("64,32", "strictly increasing"), ("32,32", "strictly increasing"), ("0,8", "at least 1"),
    ("32,x", "whole numbers"), ("32,1024", "above the model's maximum length 512"),
    (",".join(str(n) for n in range(1, 18)), "at most 16"),
])
def test_bad_bucket_sets_are_one_line(text, words):
    with pytest.raises(ValueError, match=words):
        parse_buckets(text)


def test_bucket_sets_in_a_sweep_may_be_slash_separated():
    assert parse_buckets("32/64/128") == parse_buckets("32,64,128") == [32, 64, 128]


def test_config_checks_lengths_against_the_largest_padded_length():
    assert WorkloadConfig(model="bert", seq_len_dist="uniform:16-128", buckets="32,64,128").validate() == []
    (problem,) = WorkloadConfig(model="bert", seq_len_dist="uniform:16-200", buckets="32,64,128").validate()
    assert "length 200 is longer than the largest padded length 128" in problem
    (problem,) = WorkloadConfig(model="bert", seq_len_dist="uniform:16-200").validate()  # --seq-len's 128
    assert "largest padded length 128" in problem
    assert WorkloadConfig(model="bert", seq_len=256, seq_len_dist="uniform:16-200").validate() == []
    (problem,) = WorkloadConfig(model="cnn", buckets="32,64").validate()
    assert "for bert's variable-length input, not cnn" in problem
    (problem,) = WorkloadConfig(model="bert", seq_len=64, buckets="32,64").validate()
    assert "drop --seq-len" in problem


def test_default_lengths_match_todays_synthetic_input():
    """Without --seq-len-dist rows are between half and all of the largest length, as example_inputs draws them."""
    assert LengthDistribution("uniform", low=64, high=128).pmf(128) == parse_seq_len_dist("uniform:64-128").pmf(128)
