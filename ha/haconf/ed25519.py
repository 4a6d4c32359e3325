"""Ed25519 signature verification (RFC 8032), in plain Python, for `haconf upgrade`.

The image's python3 has no `cryptography`, and one verification per upgrade
does not need speed: big integers are enough. Only what checking a
signature needs is here: point decoding (§5.1.3), addition and scalar
multiplication in extended coordinates (§5.1.4), and the verify steps of
§5.1.7. No secret ever passes through this code, so timing does not matter.
Imported only by ha.haconf.upgrade, when an upgrade runs.
"""

import base64
import hashlib

P = 2 ** 255 - 19  # the field
L = 2 ** 252 + 27742317777372353535851937790883648493  # the order of the base point
D = -121665 * pow(121666, P - 2, P) % P  # the curve's constant d
SQRT_M1 = pow(2, (P - 1) // 4, P)  # a square root of -1 mod p

# SubjectPublicKeyInfo of an Ed25519 key (RFC 8410 §4): this prefix, then the 32 octets
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def _inv(x):
    return pow(x, P - 2, P)


def _add(p, q):
    """Point addition in extended coordinates (X, Y, Z, T), RFC 8032 §5.1.4."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % P, g * h % P, f * g % P, e * h % P


def _mul(s, p):
    q = (0, 1, 1, 0)  # the neutral element
    while s:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _same(p, q):
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def _x_of(y, sign):
    """The x with this y and low bit, or None (§5.1.3 steps 2-4)."""
    if y >= P:
        return None
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    xx = u * _inv(v) % P
    if xx == 0:
        return None if sign else 0
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P:
        x = x * SQRT_M1 % P
        if (x * x - xx) % P:
            return None
    return P - x if x & 1 != sign else x


def _decode(s):
    """A 32-octet encoding to a point, or None when it is not one."""
    if len(s) != 32:
        return None
    n = int.from_bytes(s, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    x = _x_of(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


_GY = 4 * _inv(5) % P
BASE = (_x_of(_GY, 0), _GY, 1, _x_of(_GY, 0) * _GY % P)


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True when *signature* is a valid Ed25519 signature of *message* by *public*."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a, r = _decode(public), _decode(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:  # §5.1.7 step 1: a non-canonical S is refused (no malleability)
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    # §5.1.7 step 3, the cofactored form: [8][S]B = [8]R + [8][k]A
    left = _mul(8 * s, BASE)
    right = _mul(8, _add(r, _mul(k, a)))
    return _same(left, right)


def public_key_from_pem(text: str) -> bytes:
    """The 32 octets of an Ed25519 PUBLIC KEY in PEM (what `openssl pkey -pubout` writes)."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if not lines or lines[0] != "-----BEGIN PUBLIC KEY-----" or \
            lines[-1] != "-----END PUBLIC KEY-----":
        raise ValueError("not a PEM public key (-----BEGIN PUBLIC KEY----- ... END)")
    try:
        der = base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError:
        raise ValueError("the PEM public key is not valid base64") from None
    if len(der) != len(SPKI_PREFIX) + 32 or not der.startswith(SPKI_PREFIX):
        raise ValueError("not an Ed25519 public key (RFC 8410 SubjectPublicKeyInfo)")
    return der[len(SPKI_PREFIX):]
