"""The NT hash (MD4 of the UTF-16LE password) for the lab's NTLM credential store, and MD4 itself (RFC 1320).

OpenSSL 3 no longer offers MD4 to ``hashlib``, and pyspnego keeps its own in a private module: the lab computes it
here, from the RFC, so it uses pyspnego through its public interface only (the ``NTLM_USER_FILE`` store it reads).
"""

from __future__ import annotations

import struct

_MASK = 0xFFFFFFFF


def _rotate(value: int, shift: int) -> int:
    value &= _MASK
    return ((value << shift) | (value >> (32 - shift))) & _MASK


def md4(data: bytes) -> bytes:
    """RFC 1320 MD4 of ``data``."""
    length = len(data) * 8
    message = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", length & 0xFFFFFFFFFFFFFFFF)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for offset in range(0, len(message), 64):
        x = struct.unpack("<16I", message[offset:offset + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in (0, 4, 8, 12):  # round 1: F(x, y, z) = xy v not(x)z
            a = _rotate(a + ((b & c) | (~b & d)) + x[i], 3)
            d = _rotate(d + ((a & b) | (~a & c)) + x[i + 1], 7)
            c = _rotate(c + ((d & a) | (~d & b)) + x[i + 2], 11)
            b = _rotate(b + ((c & d) | (~c & a)) + x[i + 3], 19)
        for i in (0, 1, 2, 3):  # round 2: G(x, y, z) = xy v xz v yz, plus sqrt(2)
            a = _rotate(a + ((b & c) | (b & d) | (c & d)) + x[i] + 0x5A827999, 3)
            d = _rotate(d + ((a & b) | (a & c) | (b & c)) + x[i + 4] + 0x5A827999, 5)
            c = _rotate(c + ((d & a) | (d & b) | (a & b)) + x[i + 8] + 0x5A827999, 9)
            b = _rotate(b + ((c & d) | (c & a) | (d & a)) + x[i + 12] + 0x5A827999, 13)
        for i in (0, 2, 1, 3):  # round 3: H(x, y, z) = x xor y xor z, plus sqrt(3)
            a = _rotate(a + (b ^ c ^ d) + x[i] + 0x6ED9EBA1, 3)
            d = _rotate(d + (a ^ b ^ c) + x[i + 8] + 0x6ED9EBA1, 9)
            c = _rotate(c + (d ^ a ^ b) + x[i + 4] + 0x6ED9EBA1, 11)
            b = _rotate(b + (c ^ d ^ a) + x[i + 12] + 0x6ED9EBA1, 15)
        a, b, c, d = (a + aa) & _MASK, (b + bb) & _MASK, (c + cc) & _MASK, (d + dd) & _MASK
    return struct.pack("<4I", a, b, c, d)


def nt_hash(password: str) -> bytes:
    """The NT one-way function of NTLM (MS-NLMP 3.3.1: NTOWFv1, the key of NTLMv2's NTOWFv2)."""
    return md4(password.encode("utf-16-le"))
