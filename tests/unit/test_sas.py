"""SAS tokens: parsed, refused with the reason (missing letters named), warned
about before they expire."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from crosswind.errors import AuthError
from crosswind.stores.azure_common import check_sas
from crosswind.stores.azure_sas import parse_sas, sas_problems, sas_warnings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _t(delta_h: float) -> str:
    return (NOW + timedelta(hours=delta_h)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sas(**fields: str) -> str:
    base = {"sv": "2024-05-04", "se": _t(48), "sp": "rl", "sig": "SiGnAtUrE%3D"}
    base.update(fields)
    return "&".join(f"{k}={v}" for k, v in base.items() if v != "")


def test_fields_are_parsed() -> None:
    t = parse_sas("?" + sas(st=_t(-1), spr="https", ss="bt", srt="sco", sp="rlw"))
    assert t.start == NOW - timedelta(hours=1) and t.expires == NOW + timedelta(hours=48)
    assert (t.permissions, t.protocols, t.services, t.resource_types) == \
        ("rlw", "https", "bt", "sco")
    assert t.is_account_sas
    assert "sig" not in t.describe() and "sp=rlw" in t.describe()


@pytest.mark.parametrize(("token", "service", "needed", "expected"), [
    (sas(se=_t(-1)), "blob", "rl", "it expired at 2026-12-01T11:00:00+00:00"),
    (sas(st=_t(2)), "blob", "rl", "it is not valid before 2026-12-01T14:00:00+00:00"),
    (sas(sp="r"), "blob", "rl", "it lacks permission l (list): has sp=r, needs rl"),
    (sas(sp="rl"), "blob", "rlcw", "it lacks permission c (create), w (write)"),
    (sas(sp="r"), "table", "raud", "lacks permission a (add), u (update), d (delete)"),
    (sas(sp="rl", ss="t", srt="co"), "blob", "rl", "not the blob service (b)"),
    (sas(sp="rl", ss="b", srt="s"), "blob", "rl", "srt=s lack co"),
    (sas(spr="https,http"), "blob", "rl", "it allows plain http (spr=https,http)"),
    (sas(se="soon"), "blob", "rl", "its se is not a date/time"),
])
def test_refusals_say_why(token: str, service: str, needed: str, expected: str) -> None:
    problems = sas_problems(parse_sas(token), service, needed, emulator=False,  # type: ignore[arg-type]
                            now=NOW)
    assert any(expected in p for p in problems), problems


def test_a_good_token_passes_and_http_is_fine_for_an_emulator() -> None:
    good = sas(sp="racwdl", ss="btq", srt="sco", spr="https", st=_t(-1))
    for service, needed in (("blob", "rlcw"), ("table", "raud"), ("queue", "rpu")):
        problems = sas_problems(parse_sas(good.replace("sp=racwdl", "sp=racwdlup")),
                                service, needed, emulator=False, now=NOW)  # type: ignore[arg-type]
        assert problems == []
    assert sas_problems(parse_sas(sas(spr="https,http")), "blob", "rl", emulator=True,
                        now=NOW) == []


def test_expiring_soon_is_a_warning() -> None:
    assert sas_warnings(parse_sas(sas(se=_t(5))), 24, now=NOW) == [
        "it expires in 5.0 h (at 2026-12-01T17:00:00+00:00), sooner than "
        "[security] sas_min_validity_h = 24"]
    assert sas_warnings(parse_sas(sas(se=_t(30))), 24, now=NOW) == []


def test_check_sas_refuses_in_one_line_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(AuthError) as e:
        check_sas(sas(se=past, sp="r"), "rl", "azure://acct/c")
    text = str(e.value)
    assert text.startswith("azure://acct/c: the SAS token is refused: it expired at")
    assert "lacks permission l (list)" in text and "SiGnAtUrE" not in text
    assert "\n" not in text
    soon = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with caplog.at_level(logging.WARNING, logger="crosswind.stores"):
        check_sas(sas(se=soon), "rl", "azure://acct/c")
    assert "sooner than [security] sas_min_validity_h" in caplog.text
