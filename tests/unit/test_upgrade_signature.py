"""Signed upgrades: the pure-Python Ed25519 check, and what haconf upgrade refuses.

The verifier (ha/haconf/ed25519.py) is checked on RFC 8032 §7.1's vectors and
against two independent implementations: `cryptography` (OpenSSL's code
through another binding) and the openssl command build.sh uses to sign.
Keys are made by openssl in tmp dirs; bundles and cards are test_upgrade.py's.
"""

import hashlib
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ha.haconf import cli as haconf
from ha.haconf import ed25519
from ha.haconf import upgrade as U
from ha.haconf.upgrade import UpgradeError, check_signature, upgrade

sys.path.insert(0, os.path.dirname(__file__))
from test_upgrade import (firmware_key, keys, make_bundle, make_card, manifest_for,  # noqa: E402,F401
                          new_parts, openssl, sign, snapshot)

# RFC 8032 §7.1, TEST 1, 2, 3: (secret key, public key, message, signature)
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
     "39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f"
     "3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67"
     "f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.mark.parametrize("secret, public, message, signature", RFC8032)
def test_rfc8032_vectors_verify_and_any_change_fails(secret, public, message, signature):
    pk, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert ed25519.verify(pk, msg, sig)
    assert not ed25519.verify(pk, msg + b"\0", sig)
    for i in (0, 31, 32, 63):  # R, and S
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert not ed25519.verify(pk, msg, bytes(bad))
    other = bytes.fromhex(RFC8032[(RFC8032.index((secret, public, message, signature)) + 1) % 3][1])
    assert not ed25519.verify(other, msg, sig)


def test_vectors_as_transcribed_agree_with_cryptography():
    c = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519",
                            reason="cryptography is not installed here")
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    for secret, public, message, signature in RFC8032:
        key = c.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert raw.hex() == public
        assert key.sign(bytes.fromhex(message)).hex() == signature


def test_random_keys_and_messages_agree_with_cryptography():
    c = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519",
                            reason="cryptography is not installed here")
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    for n in range(20):
        key = c.Ed25519PrivateKey.generate()
        pk = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        msg = os.urandom(n * 37)
        sig = key.sign(msg)
        assert ed25519.verify(pk, msg, sig)
        assert not ed25519.verify(pk, msg + b"x", sig)


def test_a_non_canonical_s_is_refused():
    _, public, message, signature = RFC8032[0]
    sig = bytes.fromhex(signature)
    s = int.from_bytes(sig[32:], "little") + ed25519.L  # the same point equation, S >= L
    assert not ed25519.verify(bytes.fromhex(public), b"", sig[:32] + s.to_bytes(32, "little"))
    assert not ed25519.verify(b"\xff" * 32, b"", sig)  # y >= p: no point
    assert not ed25519.verify(bytes.fromhex(public), b"", sig[:63])


def test_openssl_signatures_and_pem_keys(tmp_path, keys):
    key, pub = keys
    msg = tmp_path / "m"
    msg.write_bytes(b'{"name": "denali"}\n')
    sign(str(msg), key)
    raw = ed25519.public_key_from_pem(open(pub).read())
    assert ed25519.verify(raw, msg.read_bytes(), (tmp_path / "m.sig").read_bytes())
    assert not ed25519.verify(raw, msg.read_bytes() + b" ", (tmp_path / "m.sig").read_bytes())
    for bad in ("hello", openssl("genpkey", "-algorithm", "ed25519")):  # a private key
        with pytest.raises(ValueError, match="not a PEM public key"):
            ed25519.public_key_from_pem(bad)
    ed448 = tmp_path / "ed448.key"
    openssl("genpkey", "-algorithm", "ed448", "-out", str(ed448))
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        ed25519.public_key_from_pem(openssl("pkey", "-in", str(ed448), "-pubout"))


def test_haconf_starts_without_the_verifier():
    code = "import sys, ha.haconf.cli, ha.haconf.upgrade; print('ha.haconf.ed25519' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(
                           os.path.dirname(os.path.abspath(__file__))))})
    assert r.stdout.strip() == "False", r.stderr


# ----------------------------------------------------------------- haconf upgrade

def _fingerprint(pub):
    return hashlib.sha256(ed25519.public_key_from_pem(open(pub).read())).hexdigest()[:16]


def test_a_signed_bundle_is_written_and_says_so(tmp_path, keys):
    t = make_card(tmp_path / "card")
    said = []
    upgrade(make_bundle(tmp_path, key=keys[0]), t, pubkey=keys[1], progress=said.append)
    assert said[0] == f"manifest signed with the upgrade key {_fingerprint(keys[1])}"
    assert open(os.path.join(t.boot_dir, "b", "vmlinuz"), "rb").read() == new_parts()["vmlinuz"]


def test_a_tampered_bundle_with_a_recomputed_manifest_is_refused(tmp_path, keys):
    t = make_card(tmp_path / "card")
    evil = dict(new_parts(), **{"root.squashfs": b"EVIL" * 4096})
    good = manifest_for(new_parts())
    sign_path = tmp_path / "signed"
    sign_path.mkdir()
    make_bundle(sign_path, key=keys[0], manifest=good)  # what the build machine signed
    # the attacker's root, and a manifest whose size and sha256 agree with it, with the
    # old signature
    recomputed = json.dumps(manifest_for(evil), indent=2).encode()
    path = make_bundle(tmp_path, evil, key=keys[0], manifest=good,
                       after_sign=lambda raw: recomputed)
    before = snapshot(t)
    for insecure in (False, True):  # --insecure is for unsigned bundles, not for bad ones
        with pytest.raises(UpgradeError, match="does not match its signature"):
            upgrade(path, t, pubkey=keys[1], insecure=insecure)
    assert snapshot(t) == before
    assert not os.path.exists(os.path.join(t.boot_dir, "b"))
    assert open(t.root_device, "rb").read(4) == b"\0\0\0\0"


def test_another_keys_signature_is_refused(tmp_path, keys):
    t = make_card(tmp_path / "card")
    other = str(tmp_path / "other.key")
    openssl("genpkey", "-algorithm", "ed25519", "-out", other)
    with pytest.raises(UpgradeError, match="signed with another key"):
        upgrade(make_bundle(tmp_path, key=other), t, pubkey=keys[1])
    assert U.boot_default(t.boot_dir) == "a"


def test_an_unsigned_bundle_needs_insecure(tmp_path, keys):
    t = make_card(tmp_path / "card")
    path = make_bundle(tmp_path)
    with pytest.raises(UpgradeError, match=r"not signed .*--sign KEY.*--insecure"):
        upgrade(path, t, pubkey=keys[1])
    assert U.boot_default(t.boot_dir) == "a"
    said = []
    upgrade(path, t, pubkey=keys[1], insecure=True, progress=said.append)
    assert said[0] == "manifest UNSIGNED (no manifest.json.sig), written because of --insecure"
    assert U.boot_default(t.boot_dir) == "b"


def test_a_firmware_without_a_key_needs_insecure(tmp_path, keys):
    t = make_card(tmp_path / "card")
    path = make_bundle(tmp_path, key=keys[0])
    missing = str(tmp_path / "no-such.pub")
    with pytest.raises(UpgradeError, match="no upgrade key .*--insecure"):
        upgrade(path, t, pubkey=missing)
    said = []
    upgrade(path, t, pubkey=missing, insecure=True, progress=said.append)
    assert "NOT CHECKED" in said[0]


def test_a_broken_signature_or_key_is_refused(tmp_path, keys):
    t = make_card(tmp_path / "card")
    assert check_signature(b"{}", None, keys[1], insecure=True).startswith("UNSIGNED")
    with pytest.raises(UpgradeError, match="65 bytes, not a 64-byte"):
        check_signature(b"{}", bytes(65), keys[1])
    bad = tmp_path / "bad.pub"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(UpgradeError, match="not an Ed25519 public key"):
        upgrade(make_bundle(tmp_path, key=keys[0]), t, pubkey=str(bad))


def test_haconf_upgrade_refuses_tampering_and_writes_nothing(tmp_path, keys, monkeypatch):
    t = make_card(tmp_path / "card")
    monkeypatch.setattr(U, "running_target", lambda: t)
    conf = str(tmp_path / "denali.conf")
    path = make_bundle(tmp_path, key=keys[0], after_sign=lambda raw: raw + b" ")
    r = CliRunner().invoke(haconf.cli, ["--config", conf, "upgrade", path])
    assert r.exit_code == 2
    assert "upgrade refused" in r.stderr and "signature" in r.stderr
    assert not os.path.exists(os.path.join(t.boot_dir, "b"))
