"""Parsing of `rclone check --combined` output (no rclone needed)."""

from __future__ import annotations

import pytest

from crosswind.rig.rclone import AzureSasRemote, Rclone, RcloneError, S3Remote, parse_combined


def test_combined_lines_land_in_their_sections() -> None:
    text = "= same\n- only/at dst\n+ only at src\n* différent\n! unreadable\n\n"
    log = "NOTICE: S3 bucket b: 2 hashes could not be checked\n"
    r = parse_combined(text, log)
    assert r.matched == ("same",)
    assert r.missing_on_src == ("only/at dst",)
    assert r.missing_on_dst == ("only at src",)
    assert r.differ == ("différent",)
    assert r.errors == ("unreadable",)
    assert r.differences == 4
    assert not r.ok
    assert r.hashes_unchecked == 2


def test_all_matching_is_ok() -> None:
    r = parse_combined("= a\n= b c\n")
    assert r.ok and r.matched == ("a", "b c") and r.hashes_unchecked == 0


def test_garbage_is_refused() -> None:
    with pytest.raises(RcloneError):
        parse_combined("ERROR : something\n")


def test_child_env_carries_remotes_not_ca_bundle_or_foreign_remotes() -> None:
    rc = Rclone(
        AzureSasRemote("http://127.0.0.1:1/acct/c?sv=x&sig=SECRETSIG"),
        S3Remote("AKIAEXAMPLE", "secret-key-value", "http://127.0.0.1:2"),
    )
    env = rc.env({"AWS_CA_BUNDLE": "/x.pem", "RCLONE_CONFIG_OTHER_TYPE": "s3", "PATH": "/bin"})
    assert "AWS_CA_BUNDLE" not in env
    assert "RCLONE_CONFIG_OTHER_TYPE" not in env
    assert env["PATH"] == "/bin"
    assert env["RCLONE_CONFIG_AZ_TYPE"] == "azureblob"
    assert env["RCLONE_CONFIG_S3_ENDPOINT"] == "http://127.0.0.1:2"
    assert env["RCLONE_CONFIG_S3_FORCE_PATH_STYLE"] == "true"
    # Secrets go to the child's environment only, never its argv or a repr.
    assert "secret-key-value" not in " ".join(rc.command("check", "az:c", "s3:b"))
    assert "SECRETSIG" not in repr(rc.remotes)
