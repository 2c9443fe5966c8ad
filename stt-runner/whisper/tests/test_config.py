"""The worker's settings: flags to a validated config, and what depends on the model."""

from __future__ import annotations

import argparse

import pytest

from ozen_whisper.config import (
    add_serve_arguments,
    resolve_greedy_finals,
    resolve_pool,
    resolve_vad_rate,
    serve_config,
)


def parse(*flags: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    return p.parse_args(["--model", "tiny.en", *flags])


def test_greedy_finals_are_on_for_english_only_models_and_off_for_multilingual_ones() -> None:
    auto = serve_config(parse())
    assert resolve_greedy_finals(auto, multilingual=False).stream.greedy_finals
    assert not resolve_greedy_finals(auto, multilingual=True).stream.greedy_finals
    forced = serve_config(parse("--greedy-finals", "on"))
    assert resolve_greedy_finals(forced, multilingual=True).stream.greedy_finals
    off = serve_config(parse("--greedy-finals", "off"))
    assert not resolve_greedy_finals(off, multilingual=False).stream.greedy_finals


def test_the_pool_is_two_decode_threads_for_english_only_models_and_one_for_multilingual() -> None:
    auto = serve_config(parse())
    assert auto.pool == 0
    assert resolve_pool(auto, multilingual=False).pool == 2
    assert resolve_pool(auto, multilingual=True).pool == 1
    for flag in ("1", "3"):
        given = serve_config(parse("--pool", flag))
        assert resolve_pool(given, multilingual=False).pool == int(flag)
        assert resolve_pool(given, multilingual=True).pool == int(flag)


def test_the_vad_runs_at_16k_for_english_only_models_and_8k_for_multilingual() -> None:
    auto = serve_config(parse())
    assert resolve_vad_rate(auto, multilingual=False).vad.model_rate_hz == 16000
    assert resolve_vad_rate(auto, multilingual=True).vad.model_rate_hz == 8000
    for flag in ("8000", "16000"):
        given = serve_config(parse("--vad-rate", flag))
        assert resolve_vad_rate(given, multilingual=False).vad.model_rate_hz == int(flag)
        assert resolve_vad_rate(given, multilingual=True).vad.model_rate_hz == int(flag)


def test_a_vad_rate_the_model_cannot_run_is_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        parse("--vad-rate", "11025")


def test_a_negative_pool_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"--pool is -1, expected >= 1 \(or 0: auto\)"):
        serve_config(parse("--pool", "-1"))


def test_a_batch_under_one_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="--batch is 0, expected >= 1"):
        serve_config(parse("--batch", "0"))
