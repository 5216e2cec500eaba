"""Zcash addresses checked and built offline: transparent (t1/t3/tm/t2), Sprout, Sapling, Unified and TEX.

Encodings (ZIP 173, ZIP 316, ZIP 320):
- transparent and Sprout: Base58Check over a 2-byte prefix and the payload;
- Sapling: Bech32 over the 43-byte raw address;
- TEX: Bech32m over the 20-byte P2PKH hash;
- Unified: Bech32m over F4Jumble(items || HRP padded to 16 bytes), items being
  (CompactSize typecode, CompactSize length, data) in ascending typecode order.

Bech32 strings here have no length cap: BIP-173's 90 characters is exceeded by every Unified address and by
Sapling regtest addresses (91 characters), so the `bech32` package is not used (it also lacks Bech32m).

Transparent and Sprout prefixes are shared by testnet and regtest, so such addresses decode as TEST and are
accepted on REGTEST too.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from enum import Enum, StrEnum

import base58

from kernel.errors import InvalidAddress


class ZcashNetwork(StrEnum):
    """A Zcash network, named as `getblockchaininfo` reports it in `chain`."""

    MAIN = "main"
    TEST = "test"
    REGTEST = "regtest"


@dataclass(frozen=True, slots=True)
class _NetworkParams:
    p2pkh_prefix: bytes
    p2sh_prefix: bytes
    sprout_prefix: bytes
    sapling_hrp: str
    unified_hrp: str
    tex_hrp: str


_PARAMS: dict[ZcashNetwork, _NetworkParams] = {
    ZcashNetwork.MAIN: _NetworkParams(
        p2pkh_prefix=b"\x1c\xb8",
        p2sh_prefix=b"\x1c\xbd",
        sprout_prefix=b"\x16\x9a",
        sapling_hrp="zs",
        unified_hrp="u",
        tex_hrp="tex",
    ),
    ZcashNetwork.TEST: _NetworkParams(
        p2pkh_prefix=b"\x1d\x25",
        p2sh_prefix=b"\x1c\xba",
        sprout_prefix=b"\x16\xb6",
        sapling_hrp="ztestsapling",
        unified_hrp="utest",
        tex_hrp="textest",
    ),
    ZcashNetwork.REGTEST: _NetworkParams(  # zcashd's regtest reuses testnet's Base58 prefixes
        p2pkh_prefix=b"\x1d\x25",
        p2sh_prefix=b"\x1c\xba",
        sprout_prefix=b"\x16\xb6",
        sapling_hrp="zregtestsapling",
        unified_hrp="uregtest",
        tex_hrp="texregtest",
    ),
}

# Base58Check prefix -> (kind, network). Regtest shares testnet's prefixes, so it never appears here.
_BASE58_PREFIXES: dict[bytes, tuple[str, ZcashNetwork]] = {
    prefix: (kind, network)
    for network in (ZcashNetwork.MAIN, ZcashNetwork.TEST)
    for kind, prefix in (
        ("p2pkh", _PARAMS[network].p2pkh_prefix),
        ("p2sh", _PARAMS[network].p2sh_prefix),
        ("sprout", _PARAMS[network].sprout_prefix),
    )
}
_BASE58_PAYLOAD_LENGTHS = {"p2pkh": 20, "p2sh": 20, "sprout": 64}  # sprout: a_pk (32) || pk_enc (32)

# Bech32 HRP -> (kind, network)
_BECH32_HRPS: dict[str, tuple[str, ZcashNetwork]] = {
    hrp: (kind, network)
    for network, params in _PARAMS.items()
    for kind, hrp in (("sapling", params.sapling_hrp), ("unified", params.unified_hrp), ("tex", params.tex_hrp))
}

_TRANSPARENT_KINDS = ("p2pkh", "p2sh")
_SHIELDED_RECEIVERS = ("sapling", "orchard")

# Unified address items (ZIP 316): typecode <-> receiver name, and the length each known receiver must have.
_RECEIVER_TYPECODES = {"p2pkh": 0, "p2sh": 1, "sapling": 2, "orchard": 3}
_TYPECODE_RECEIVERS = {typecode: name for name, typecode in _RECEIVER_TYPECODES.items()}
_RECEIVER_LENGTHS = {"p2pkh": 20, "p2sh": 20, "sapling": 43, "orchard": 43}
_UNKNOWN_PREFIX = "unknown:"
_UNIFIED_PADDING_LENGTH = 16
_MAX_COMPACT_SIZE = 0x02000000  # the largest CompactSize value zcashd accepts


@dataclass(frozen=True, slots=True)
class ZcashAddress:
    """A decoded address. `network` is TEST for transparent and Sprout testnet prefixes (shared with regtest).

    `receivers` maps receiver names to raw bytes: "p2pkh"/"p2sh" (20-byte hashes), "sapling"/"orchard"
    (43 bytes), "sprout" (64 bytes) and, for Unified addresses only, "unknown:<typecode>" for items we cannot
    interpret but must keep.
    """

    text: str
    kind: str
    network: ZcashNetwork
    receivers: dict[str, bytes]

    @property
    def is_shielded(self) -> bool:
        return self.kind == "sprout" or any(name in self.receivers for name in _SHIELDED_RECEIVERS)

    def transparent_receiver(self) -> str | None:
        """The t-address (P2PKH or P2SH) this address carries, encoded for its network, or None."""
        if self.kind in _TRANSPARENT_KINDS:
            return self.text
        for kind in _TRANSPARENT_KINDS:
            if kind in self.receivers:
                return encode_transparent(self.network, kind, self.receivers[kind])
        return None


# --- Bech32 / Bech32m (BIP-173, BIP-350) -------------------------------------------------------------------

_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_CHARSET_INDEX = {char: value for value, char in enumerate(_BECH32_CHARSET)}
_BECH32_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32_CHECKSUM_LENGTH = 6


class Bech32Variant(Enum):
    """The two checksums, valued by the constant the polymod must equal: Sapling uses Bech32, UA and TEX Bech32m."""

    BECH32 = 1
    BECH32M = 0x2BC830A3

    @property
    def label(self) -> str:
        return "Bech32" if self is Bech32Variant.BECH32 else "Bech32m"


def _bech32_polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_BECH32_GENERATORS):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum


def _bech32_hrp_expand(hrp: str) -> list[int]:
    return [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    """Regroup `data` from `from_bits`-bit to `to_bits`-bit values; without `pad`, leftover bits must be zero
    padding shorter than `from_bits`."""
    accumulator = 0
    bits = 0
    result = []
    max_value = (1 << to_bits) - 1
    for value in data:
        accumulator = (accumulator << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            result.append((accumulator >> bits) & max_value)
    if pad:
        if bits:
            result.append((accumulator << (to_bits - bits)) & max_value)
    elif bits >= from_bits or (accumulator << (to_bits - bits)) & max_value:
        raise InvalidAddress("invalid address: invalid padding in the Bech32 data part")
    return result


def bech32_encode(hrp: str, payload: bytes, variant: Bech32Variant) -> str:
    """Encode 8-bit `payload` under `hrp` with no length cap."""
    data = _convert_bits(payload, 8, 5, pad=True)
    polymod = _bech32_polymod(_bech32_hrp_expand(hrp) + data + [0] * _BECH32_CHECKSUM_LENGTH) ^ variant.value
    checksum = [(polymod >> 5 * (5 - index)) & 31 for index in range(_BECH32_CHECKSUM_LENGTH)]
    return hrp + "1" + "".join(_BECH32_CHARSET[value] for value in data + checksum)


def _bech32_decode(text: str, variant: Bech32Variant) -> bytes:
    """Check the string (already lower case) and its checksum, and return the 8-bit payload."""
    separator = text.rfind("1")
    hrp, data_part = text[:separator], text[separator + 1 :]
    if len(data_part) < _BECH32_CHECKSUM_LENGTH:
        raise InvalidAddress(f"invalid {variant.label} address: the data part is too short")
    try:
        data = [_BECH32_CHARSET_INDEX[char] for char in data_part]
    except KeyError as error:
        raise InvalidAddress(f"invalid {variant.label} address: character {error.args[0]!r} is not allowed") from None
    polymod = _bech32_polymod(_bech32_hrp_expand(hrp) + data)
    if polymod != variant.value:
        if polymod in (other.value for other in Bech32Variant):
            raise InvalidAddress(f"invalid address: {hrp!r} addresses must be encoded with {variant.label}")
        raise InvalidAddress(f"invalid {variant.label} address: bad checksum")
    return bytes(_convert_bits(data[:-_BECH32_CHECKSUM_LENGTH], 5, 8, pad=False))


# --- F4Jumble (ZIP 316) ------------------------------------------------------------------------------------

_F4JUMBLE_MIN_LENGTH = 48
_F4JUMBLE_MAX_LENGTH = 4194368  # 2^16 + 1 blocks of 64 bytes
_BLAKE2B_MAX_OUTPUT = 64


def _f4jumble_h(round_index: int, data: bytes, length: int) -> bytes:
    person = b"UA_F4Jumble_H" + bytes([round_index, 0, 0])
    return hashlib.blake2b(data, digest_size=length, person=person).digest()


def _f4jumble_g(round_index: int, data: bytes, length: int) -> bytes:
    blocks = []
    for block_index in range(-(-length // _BLAKE2B_MAX_OUTPUT)):
        person = b"UA_F4Jumble_G" + bytes([round_index]) + block_index.to_bytes(2, "little")
        blocks.append(hashlib.blake2b(data, digest_size=_BLAKE2B_MAX_OUTPUT, person=person).digest())
    return b"".join(blocks)[:length]


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _f4jumble_split(message: bytes) -> tuple[int, int]:
    if not _F4JUMBLE_MIN_LENGTH <= len(message) <= _F4JUMBLE_MAX_LENGTH:
        raise InvalidAddress(
            f"invalid unified address: payload of {len(message)} bytes is outside "
            f"{_F4JUMBLE_MIN_LENGTH}..{_F4JUMBLE_MAX_LENGTH}"
        )
    left_length = min(_BLAKE2B_MAX_OUTPUT, len(message) // 2)
    return left_length, len(message) - left_length


def f4jumble(message: bytes) -> bytes:
    left_length, right_length = _f4jumble_split(message)
    a, b = message[:left_length], message[left_length:]
    x = _xor(b, _f4jumble_g(0, a, right_length))
    y = _xor(a, _f4jumble_h(0, x, left_length))
    d = _xor(x, _f4jumble_g(1, y, right_length))
    c = _xor(y, _f4jumble_h(1, d, left_length))
    return c + d


def f4jumble_inverse(jumbled: bytes) -> bytes:
    left_length, right_length = _f4jumble_split(jumbled)
    c, d = jumbled[:left_length], jumbled[left_length:]
    y = _xor(c, _f4jumble_h(1, d, left_length))
    x = _xor(d, _f4jumble_g(1, y, right_length))
    a = _xor(y, _f4jumble_h(0, x, left_length))
    b = _xor(x, _f4jumble_g(0, a, right_length))
    return a + b


# --- CompactSize and Unified address items -----------------------------------------------------------------


def _write_compact_size(value: int) -> bytes:
    if value < 0xFD:
        return bytes([value])
    if value <= 0xFFFF:
        return b"\xfd" + value.to_bytes(2, "little")
    return b"\xfe" + value.to_bytes(4, "little")  # values above _MAX_COMPACT_SIZE are refused before this


def _read_compact_size(data: bytes, offset: int) -> tuple[int, int]:
    """Read a canonical CompactSize at `offset`; return (value, offset after it)."""
    if offset >= len(data):
        raise InvalidAddress("invalid unified address: truncated item")
    first = data[offset]
    width, minimum = {0xFD: (2, 0xFD), 0xFE: (4, 0x10000), 0xFF: (8, 0x100000000)}.get(first, (0, 0))
    if not width:
        return first, offset + 1
    if offset + 1 + width > len(data):
        raise InvalidAddress("invalid unified address: truncated item")
    value = int.from_bytes(data[offset + 1 : offset + 1 + width], "little")
    if value < minimum:
        raise InvalidAddress("invalid unified address: non-canonical CompactSize")
    if value > _MAX_COMPACT_SIZE:
        raise InvalidAddress("invalid unified address: CompactSize too large")
    return value, offset + 1 + width


def _receiver_name(typecode: int) -> str:
    return _TYPECODE_RECEIVERS.get(typecode, f"{_UNKNOWN_PREFIX}{typecode}")


def _receiver_typecode(name: str) -> int:
    if name in _RECEIVER_TYPECODES:
        return _RECEIVER_TYPECODES[name]
    digits = name.removeprefix(_UNKNOWN_PREFIX)
    if name.startswith(_UNKNOWN_PREFIX) and digits.isdecimal():
        typecode = int(digits)
        if typecode not in _TYPECODE_RECEIVERS and typecode <= _MAX_COMPACT_SIZE:
            return typecode
    raise InvalidAddress(f"invalid unified address: unknown receiver name {name!r}")


def _check_unified_items(items: list[tuple[int, bytes]]) -> None:
    """Apply ZIP 316's rules to (typecode, data) items in encoding order."""
    typecodes = [typecode for typecode, _ in items]
    for earlier, later in itertools.pairwise(typecodes):
        if later == earlier:
            raise InvalidAddress(f"invalid unified address: typecode {later} appears twice")
        if later < earlier:
            raise InvalidAddress("invalid unified address: typecodes are not in ascending order")
    names = [_receiver_name(typecode) for typecode in typecodes]
    if all(kind in names for kind in _TRANSPARENT_KINDS):
        raise InvalidAddress("invalid unified address: it has both a p2pkh and a p2sh receiver")
    if all(name in _TRANSPARENT_KINDS for name in names):  # unknown typecodes count as shielded, as in ZIP 316
        raise InvalidAddress("invalid unified address: it has no shielded receiver (only transparent ones)")
    for name, (_, data) in zip(names, items, strict=True):
        expected = _RECEIVER_LENGTHS.get(name)
        if expected is not None and len(data) != expected:
            raise InvalidAddress(
                f"invalid unified address: {name} receiver of {len(data)} bytes, expected {expected}"
            )


def _unified_padding(hrp: str) -> bytes:
    return hrp.encode("ascii").ljust(_UNIFIED_PADDING_LENGTH, b"\x00")


def _parse_unified_items(message: bytes, hrp: str) -> dict[str, bytes]:
    items_data, padding = message[:-_UNIFIED_PADDING_LENGTH], message[-_UNIFIED_PADDING_LENGTH:]
    if padding != _unified_padding(hrp):
        raise InvalidAddress("invalid unified address: padding does not match its prefix")
    items: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(items_data):
        typecode, offset = _read_compact_size(items_data, offset)
        length, offset = _read_compact_size(items_data, offset)
        if offset + length > len(items_data):
            raise InvalidAddress("invalid unified address: truncated item")
        items.append((typecode, items_data[offset : offset + length]))
        offset += length
    _check_unified_items(items)
    return {_receiver_name(typecode): data for typecode, data in items}


# --- Encoders ----------------------------------------------------------------------------------------------


def encode_transparent(network: ZcashNetwork, kind: str, hash20: bytes) -> str:
    """A t-address: `kind` "p2pkh" (t1/tm) or "p2sh" (t3/t2) over a 20-byte hash; regtest uses testnet's prefixes."""
    if kind not in _TRANSPARENT_KINDS:
        raise InvalidAddress(f"unknown transparent address kind {kind!r}")
    _require_length(kind, hash20, 20)
    params = _PARAMS[network]
    prefix = params.p2pkh_prefix if kind == "p2pkh" else params.p2sh_prefix
    return base58.b58encode_check(prefix + hash20).decode("ascii")


def encode_sapling(network: ZcashNetwork, raw43: bytes) -> str:
    _require_length("sapling", raw43, 43)
    return bech32_encode(_PARAMS[network].sapling_hrp, raw43, Bech32Variant.BECH32)


def encode_tex(network: ZcashNetwork, hash20: bytes) -> str:
    """A ZIP 320 TEX address: the same P2PKH hash as a t1/tm address, marked "transparent source only"."""
    _require_length("tex", hash20, 20)
    return bech32_encode(_PARAMS[network].tex_hrp, hash20, Bech32Variant.BECH32M)


def encode_unified(network: ZcashNetwork, receivers: dict[str, bytes]) -> str:
    """A Unified address carrying `receivers` (names as in `ZcashAddress.receivers`), ordered by typecode."""
    items = sorted((_receiver_typecode(name), data) for name, data in receivers.items())
    _check_unified_items(items)
    hrp = _PARAMS[network].unified_hrp
    message = b"".join(
        _write_compact_size(typecode) + _write_compact_size(len(data)) + data for typecode, data in items
    )
    return bech32_encode(hrp, f4jumble(message + _unified_padding(hrp)), Bech32Variant.BECH32M)


def _require_length(kind: str, data: bytes, expected: int) -> None:
    if len(data) != expected:
        raise InvalidAddress(f"{kind} payload must be {expected} bytes, got {len(data)}")


# --- Decoding ----------------------------------------------------------------------------------------------


def decode_address(text: str) -> ZcashAddress:
    """Decode any Zcash address; raise InvalidAddress saying what is wrong."""
    text = text.strip()  # copy-paste often adds surrounding whitespace
    if not text:
        raise InvalidAddress("invalid address: it is empty")
    lowered = text.lower()
    hrp = lowered[: lowered.rfind("1")] if "1" in lowered else ""
    if hrp in _BECH32_HRPS:
        return _decode_bech32_address(text, lowered, hrp)
    return _decode_base58_address(text)


def _decode_bech32_address(text: str, lowered: str, hrp: str) -> ZcashAddress:
    if text != lowered and text != text.upper():
        raise InvalidAddress("invalid address: mixed upper and lower case")
    kind, network = _BECH32_HRPS[hrp]
    if kind == "sapling":
        payload = _bech32_decode(lowered, Bech32Variant.BECH32)
        _require_length("sapling", payload, 43)
        receivers = {"sapling": payload}
    elif kind == "tex":
        payload = _bech32_decode(lowered, Bech32Variant.BECH32M)
        _require_length("tex", payload, 20)
        receivers = {"p2pkh": payload}
    else:
        jumbled = _bech32_decode(lowered, Bech32Variant.BECH32M)
        receivers = _parse_unified_items(f4jumble_inverse(jumbled), hrp)
    return ZcashAddress(text=lowered, kind=kind, network=network, receivers=receivers)


def _decode_base58_address(text: str) -> ZcashAddress:
    try:
        decoded = base58.b58decode_check(text)
    except ValueError as error:
        if "checksum" in str(error).lower():
            raise InvalidAddress("invalid address: bad Base58Check checksum") from None
        raise InvalidAddress("invalid address: not a Zcash address (unknown prefix or invalid characters)") from None
    prefix, payload = decoded[:2], decoded[2:]
    if prefix not in _BASE58_PREFIXES:
        raise InvalidAddress(f"invalid address: unknown prefix 0x{prefix.hex()}")
    kind, network = _BASE58_PREFIXES[prefix]
    _require_length(kind, payload, _BASE58_PAYLOAD_LENGTHS[kind])
    return ZcashAddress(text=text, kind=kind, network=network, receivers={kind: payload})


def validate_address(text: str, network: ZcashNetwork) -> ZcashAddress:
    """Decode `text` and check it belongs to `network` (testnet transparent/Sprout prefixes also fit regtest).

    `network` may also be given as the plain string `getblockchaininfo` reports ("main", "test", "regtest").
    """
    network = ZcashNetwork(network)
    address = decode_address(text)
    shares_testnet_prefixes = address.kind in _BASE58_PAYLOAD_LENGTHS and network is ZcashNetwork.REGTEST
    expected = ZcashNetwork.TEST if shares_testnet_prefixes else network
    if address.network is not expected:
        raise InvalidAddress(
            f"address is for the {address.network.value} network, expected {network.value}",
            code="wrong_network",
            details={"address_network": address.network.value, "expected_network": network.value},
        )
    return address
