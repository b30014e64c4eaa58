"""The zip file of a wheel, written here rather than with :mod:`zipfile`: its members are deflated with
libdeflate (the ``deflate`` package), whose level 5 makes the wheels of safehold's closure the size of
zlib's level 6 (0.999x) for 0.31x its CPU, while :mod:`zipfile` compresses only with the standard ``zlib``.
libdeflate compresses a whole buffer at a time (a wheel's member is read whole anyway) and lets go of the
interpreter lock meanwhile, so wheels are built two at a time in threads.

Only what a wheel needs: members in the given order, each deflated (or stored when it is compressed
already, :data:`STORED_SUFFIXES`, or deflate makes it no smaller), one fixed time, Unix modes, no comment,
no data descriptors, no Zip64 (a wheel over 4 GiB or 65,535 members is refused: no distribution comes
near). The layout is the one
:mod:`zipfile` writes for ``writestr`` of a :class:`zipfile.ZipInfo` on a seekable file (version 2.0, system
Unix, bit 11 for a UTF-8 name), so any zip reader, pip's included, reads it.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import deflate

from safehold.errors import SafeholdError

#: libdeflate's level, on the members of safehold's closure (163 MB, not counting stored ones) against
#: zlib's 6: 5 is 0.999x the size for 0.31x the CPU, 4 1.020x for 0.27x, 6 0.992x for 0.41x. (zlib-ng's
#: level 6 was 1.017x for 0.41x, ISA-L's 3 1.110x for 0.14x.)
LEVEL = 5
#: Members whose content is compressed already: stored, as deflating them gains nothing (botocore's 961
#: ``.json.gz`` files, 15.6 MB: 0.3 s of CPU for 6 KB).
STORED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip", ".whl", ".png", ".jpg", ".jpeg", ".gif", ".webp")
_DEFLATED = 8
_STORED = 0
_VERSION = 20  # 2.0: deflate
_UNIX = 3
_UTF8 = 0x800
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_LIMIT = 0xFFFFFFFF


class ZipTooLarge(SafeholdError):
    default_hint = "A wheel over 4 GiB or with more than 65,535 files cannot be packed (no Zip64)."


def _dos_time(when: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    year, month, day, hour, minute, second = when
    return hour << 11 | minute << 5 | second // 2, (year - 1980) << 9 | month << 5 | day


class WheelZip:
    """Writes members one after the other to ``out`` (positioned at 0), then the central directory at
    :meth:`close`."""

    def __init__(self, out: BinaryIO, when: tuple[int, int, int, int, int, int]) -> None:
        self._out = out
        self._time, self._date = _dos_time(when)
        self._central: list[bytes] = []
        self._offset = 0

    def add(self, name: str, data: bytes, mode: int) -> None:
        """Member ``name`` with ``data`` and the Unix file ``mode`` (type and permission bits)."""
        body: bytes | bytearray = data
        method = _STORED
        if not name.endswith(STORED_SUFFIXES):
            packed = deflate.deflate_compress(data, LEVEL)
            if len(packed) < len(data):  # else stored: deflate made it no smaller
                method, body = _DEFLATED, packed
        crc = deflate.crc32(data)
        try:
            raw_name, flags = name.encode("ascii"), 0
        except UnicodeEncodeError:
            raw_name, flags = name.encode("utf-8"), _UTF8
        if max(len(data), len(body), self._offset) >= _LIMIT or len(self._central) >= 0xFFFF:
            raise ZipTooLarge(f"{name}: the wheel would need Zip64")
        fields = (flags, method, self._time, self._date, crc, len(body), len(data), len(raw_name))
        self._out.write(_LOCAL.pack(b"PK\x03\x04", _VERSION, 0, *fields, 0))
        self._out.write(raw_name)
        self._out.write(body)
        self._central.append(
            _CENTRAL.pack(
                b"PK\x01\x02", _VERSION, _UNIX, _VERSION, 0, *fields, 0, 0, 0, 0, mode << 16, self._offset
            )
            + raw_name
        )
        self._offset += _LOCAL.size + len(raw_name) + len(body)

    def close(self) -> None:
        """Write the central directory and the end record."""
        directory = b"".join(self._central)
        if self._offset + len(directory) >= _LIMIT:
            raise ZipTooLarge("the wheel would need Zip64")
        self._out.write(directory)
        n = len(self._central)
        self._out.write(_END.pack(b"PK\x05\x06", 0, 0, n, n, len(directory), self._offset, 0))
