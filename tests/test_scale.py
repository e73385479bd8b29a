import pytest

from diffbook import scale


def test_default_is_small(monkeypatch):
    monkeypatch.delenv("DIFFBOOK_SCALE", raising=False)
    assert scale.current() == "small"


@pytest.mark.parametrize("value,expected", [("tiny", "tiny"), ("SMALL", "small"), (" full ", "full"), ("", "small")])
def test_reads_environment(monkeypatch, value, expected):
    monkeypatch.setenv("DIFFBOOK_SCALE", value)
    assert scale.current() == expected


def test_bad_preset_names_the_variable(monkeypatch):
    monkeypatch.setenv("DIFFBOOK_SCALE", "huge")
    with pytest.raises(ValueError, match="DIFFBOOK_SCALE='huge'.*tiny, small, full"):
        scale.current()


def test_by_scale_picks_each_size(monkeypatch):
    for preset, value in [("tiny", 1), ("small", 10), ("full", 100)]:
        monkeypatch.setenv("DIFFBOOK_SCALE", preset)
        assert scale.by_scale(tiny=1, small=10, full=100) == value
    assert scale.by_scale(tiny=1, small=10, full=100, preset="full") == 100


def test_by_scale_requires_all_sizes_and_a_valid_override():
    with pytest.raises(TypeError):
        scale.by_scale(tiny=1, small=2)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="preset must be one of"):
        scale.by_scale(tiny=1, small=2, full=3, preset="medium")  # type: ignore[arg-type]
