"""Offline Zcash address decoding, validation and encoding, checked against public test vectors.

Vectors come from zcash/librustzcash (`f4jumble/src/test_vectors.rs`, `zcash_address/src/encoding.rs`,
`zcash_address/src/kind/unified/address/test_vectors.rs`) and zcash/zcash (`rpc_wallet_tests.cpp`).
"""

from __future__ import annotations

import base58
import pytest

from chains.zcash_address import (
    Bech32Variant,
    ZcashAddress,
    ZcashNetwork,
    bech32_encode,
    decode_address,
    encode_sapling,
    encode_tex,
    encode_transparent,
    encode_unified,
    f4jumble,
    f4jumble_inverse,
    validate_address,
)
from kernel.errors import InvalidAddress

ALL_NETWORKS = list(ZcashNetwork)

# librustzcash encoding.rs: all-zero payloads
ZERO_P2PKH = {
    ZcashNetwork.MAIN: "t1Hsc1LR8yKnbbe3twRp88p6vFfC5t7DLbs",
    ZcashNetwork.TEST: "tm9iMLAuYMzJ6jtFLcA7rzUmfreGuKvr7Ma",
}
ZERO_P2SH = {
    ZcashNetwork.MAIN: "t3JZcvsuaXE6ygokL4XUiZSTrQBUoPYFnXJ",
    ZcashNetwork.TEST: "t26YoyZ1iPgiMEWL4zGUm74eVWfhyDMXzY2",
}
ZERO_SPROUT = {
    ZcashNetwork.MAIN: "zc8E5gYid86n4bo2Usdq1cpr7PpfoJGzttwBHEEgGhGkLUg7SPPVFNB2AkRFXZ7usfphup5426dt1buMmY3fkYeRrQGLa8y",
    ZcashNetwork.TEST: "ztJ1EWLKcGwF2S4NA17pAJVdco8Sdkz4AQPxt1cLTEfNuyNswJJc2BbBqYrsRZsp31xbVZwhF7c7a2L9jsF3p3ZwRWpqqyS",
}
ZERO_SAPLING = {
    ZcashNetwork.MAIN: "zs1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqpq6d8g",
    ZcashNetwork.TEST: "ztestsapling1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqfhgwqu",
    ZcashNetwork.REGTEST: "zregtestsapling1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqknpr3m",
}
ZERO_SAPLING_UNIFIED = {
    ZcashNetwork.MAIN: "u1qpatys4zruk99pg59gcscrt7y6akvl9vrhcfyhm9yxvxz7h87q6n8cgrzzpe9zru68uq39uhmlpp5uefxu0su5uqyqfe5zp3tycn0ecl",
    ZcashNetwork.TEST: "utest10c5kutapazdnf8ztl3pu43nkfsjx89fy3uuff8tsmxm6s86j37pe7uz94z5jhkl49pqe8yz75rlsaygexk6jpaxwx0esjr8wm5ut7d5s",
    ZcashNetwork.REGTEST: "uregtest15xk7vj4grjkay6mnfl93dhsflc2yeunhxwdh38rul0rq3dfhzzxgm5szjuvtqdha4t4p2q02ks0jgzrhjkrav70z9xlvq0plpcjkd5z3",
}
TEX_PAIRS = [  # (TEX, the t-address with the same P2PKH hash)
    ("tex1s2rt77ggv6q989lr49rkgzmh5slsksa9khdgte", "t1VmmGiyjVNeCjxDZzg7vZmd99WyzVby9yC"),
    ("textest1qyqszqgpqyqszqgpqyqszqgpqyqszqgpfcjgfy", "tm9ofD7kHR7AF8MsJomEzLqGcrLCBkD9gDj"),
]

# unified/address/test_vectors.rs, first vector: P2PKH + Sapling
UA_P2PKH_SAPLING = (
    "u1l8xunezsvhq8fgzfl7404m450nwnd76zshscn6nfys7vyz2ywyh4cc5daaq0c7q2su5lqfh23sp7fkf3kt27ve5948mzpfdvckzaect2"
    "jtte308mkwlycj2u0eac077wu70vqcetkxf"
)
UA_P2PKH_BYTES = bytes.fromhex("7bb83570b8fae146e03c5331a020b1e0892f631d")
UA_SAPLING_BYTES = bytes.fromhex(
    "d8ef8293d26de832e7193f296ba1922d90f122c6135bc231eebd91efdb03b1a8606771cd4fd6480574d43e"
)
# the same file: a vector with P2PKH, Sapling and Orchard, and one with Sapling and Orchard only
UA_ALL_THREE = (
    "u1pg2aaph7jp8rpf6yhsza25722sg5fcn3vaca6ze27hqjw7jvvhhuxkpcg0ge9xh6drsgdkda8qjq5chpehkcpxf87rnjryjqwymdheptpvnl"
    "jqqrjqzjwkc2ma6hcq666kgwfytxwac8eyex6ndgr6ezte66706e3vaqrd25dzvzkc69kw0jgywtd0cmq52q5lkw6uh7hyvzjse8ksx"
)
UA_ALL_THREE_ORCHARD = bytes.fromhex(
    "cecbe5e689a453a3fe10ccf7617e6c1fb382819d7fc9200a1f42092ac84a30378f8c1fb90dff71a6d5042d"
)
UA_SHIELDED_ONLY = (
    "u1ay3aawlldjrmxqnjf5medr5ma6p3acnet464ht8lmwplq5cd3ugytcmlf96rrmtgwldc75x94qn4n8pgen36y8tywlq6yjk7lkf3fa8wzjr"
    "av8z2xpxqnrnmjxh8tmz6jhfh425t7f3vy6p4pd3zmqayq49efl2c4xydc0gszg660q9p"
)

# zcash/zcash src/wallet/test/rpc_wallet_tests.cpp: a valid mainnet Sapling address
ZCASHD_SAPLING = "zs1z7rejlpsa98s2rrrfkwmaxu53e4ue0ulcrw0h4x5g8jl04tak0d3mm47vdtahatqrlkngh9slya"

# f4jumble/src/test_vectors.rs, first vector (48 bytes, the shortest valid message)
F4JUMBLE_NORMAL = bytes.fromhex(
    "5d7a8f739a2d9e945b0ce152a8049e294c4d6e66b164939daffa2ef6ee6921481cdd86b3cc4318d9614fc820905d042b"
)
F4JUMBLE_JUMBLED = bytes.fromhex(
    "0304d029141b995da5387c1259706735" "04d6c764d91ea6c082123770c7139ccd" "88ee27368cd0c0921a0444c8e5858d22"
)

SAPLING_RAW = bytes(range(43))
ORCHARD_RAW = bytes(range(100, 143))
HASH20 = bytes(range(200, 220))


def raw_unified(hrp: str, items: list[tuple[int, bytes]], padding_hrp: str | None = None) -> str:
    """A UA string built item by item, so that tests can make the invalid ones the encoder refuses to build."""
    body = b"".join(bytes([typecode, len(data)]) + data for typecode, data in items)
    padding = (padding_hrp or hrp).encode("ascii").ljust(16, b"\x00")
    return bech32_encode(hrp, f4jumble(body + padding), Bech32Variant.BECH32M)


def refusal(text: str) -> str:
    with pytest.raises(InvalidAddress) as caught:
        decode_address(text)
    assert caught.value.code == "invalid_address"
    return caught.value.message


# --- public vectors -----------------------------------------------------------------------------------------


def test_f4jumble_matches_the_librustzcash_vector() -> None:
    assert f4jumble(F4JUMBLE_NORMAL) == F4JUMBLE_JUMBLED
    assert f4jumble_inverse(F4JUMBLE_JUMBLED) == F4JUMBLE_NORMAL


def test_f4jumble_round_trips_messages_longer_than_one_hash_block() -> None:
    message = bytes(index % 251 for index in range(300))
    jumbled = f4jumble(message)
    assert jumbled != message
    assert f4jumble_inverse(jumbled) == message


@pytest.mark.parametrize("length", [47, 4194369])
def test_f4jumble_refuses_lengths_outside_its_domain(length: int) -> None:
    with pytest.raises(InvalidAddress, match=r"outside 48\.\.4194368"):
        f4jumble(bytes(length))


def test_first_unified_vector_decodes_to_its_receivers() -> None:
    address = decode_address(UA_P2PKH_SAPLING)
    assert address == ZcashAddress(
        text=UA_P2PKH_SAPLING,
        kind="unified",
        network=ZcashNetwork.MAIN,
        receivers={"p2pkh": UA_P2PKH_BYTES, "sapling": UA_SAPLING_BYTES},
    )
    assert address.is_shielded
    receivers_in_any_order = {"sapling": UA_SAPLING_BYTES, "p2pkh": UA_P2PKH_BYTES}
    assert encode_unified(ZcashNetwork.MAIN, receivers_in_any_order) == UA_P2PKH_SAPLING


def test_transparent_receiver_of_a_unified_address_is_its_t1_address() -> None:
    expected = encode_transparent(ZcashNetwork.MAIN, "p2pkh", UA_P2PKH_BYTES)
    assert expected.startswith("t1")
    assert decode_address(UA_P2PKH_SAPLING).transparent_receiver() == expected
    assert base58.b58decode_check(expected)[2:] == UA_P2PKH_BYTES


def test_unified_vectors_with_orchard() -> None:
    all_three = decode_address(UA_ALL_THREE)
    assert list(all_three.receivers) == ["p2pkh", "sapling", "orchard"]
    assert all_three.receivers["orchard"] == UA_ALL_THREE_ORCHARD
    assert encode_unified(ZcashNetwork.MAIN, all_three.receivers) == UA_ALL_THREE

    shielded_only = decode_address(UA_SHIELDED_ONLY)
    assert list(shielded_only.receivers) == ["sapling", "orchard"]
    assert shielded_only.is_shielded
    assert shielded_only.transparent_receiver() is None


@pytest.mark.parametrize("network", ALL_NETWORKS)
def test_zero_sapling_vectors_in_sapling_and_unified_form(network: ZcashNetwork) -> None:
    assert encode_sapling(network, bytes(43)) == ZERO_SAPLING[network]
    assert encode_unified(network, {"sapling": bytes(43)}) == ZERO_SAPLING_UNIFIED[network]
    for text, kind in ((ZERO_SAPLING[network], "sapling"), (ZERO_SAPLING_UNIFIED[network], "unified")):
        address = decode_address(text)
        assert (address.kind, address.network, address.receivers) == (kind, network, {"sapling": bytes(43)})


def test_regtest_sapling_address_of_91_characters_is_accepted() -> None:
    text = ZERO_SAPLING[ZcashNetwork.REGTEST]
    assert len(text) == 91
    assert validate_address(text, ZcashNetwork.REGTEST).kind == "sapling"


def test_zcashd_mainnet_sapling_address() -> None:
    address = validate_address(ZCASHD_SAPLING, ZcashNetwork.MAIN)
    assert address.kind == "sapling"
    assert address.receivers["sapling"][:11] == bytes.fromhex("1787997c30e94f050c634d")  # the diversifier
    assert address.is_shielded
    assert address.transparent_receiver() is None


@pytest.mark.parametrize("network", [ZcashNetwork.MAIN, ZcashNetwork.TEST])
def test_zero_transparent_and_sprout_vectors(network: ZcashNetwork) -> None:
    assert encode_transparent(network, "p2pkh", bytes(20)) == ZERO_P2PKH[network]
    assert encode_transparent(network, "p2sh", bytes(20)) == ZERO_P2SH[network]
    for text, kind, length in (
        (ZERO_P2PKH[network], "p2pkh", 20),
        (ZERO_P2SH[network], "p2sh", 20),
        (ZERO_SPROUT[network], "sprout", 64),
    ):
        address = decode_address(text)
        assert (address.text, address.kind, address.network, address.receivers) == (
            text,
            kind,
            network,
            {kind: bytes(length)},
        )
        assert address.is_shielded is (kind == "sprout")
        assert address.transparent_receiver() == (None if kind == "sprout" else text)


@pytest.mark.parametrize(("tex", "transparent"), TEX_PAIRS)
def test_tex_and_its_transparent_address_share_the_hash(tex: str, transparent: str) -> None:
    tex_address = decode_address(tex)
    t_address = decode_address(transparent)
    assert tex_address.kind == "tex"
    assert tex_address.network == t_address.network
    assert tex_address.receivers == t_address.receivers
    assert tex_address.transparent_receiver() == transparent
    assert not tex_address.is_shielded
    assert encode_tex(t_address.network, t_address.receivers["p2pkh"]) == tex


# --- round trips of every encoder on every network ----------------------------------------------------------


@pytest.mark.parametrize("network", ALL_NETWORKS)
@pytest.mark.parametrize("kind", ["p2pkh", "p2sh"])
def test_transparent_round_trip(network: ZcashNetwork, kind: str) -> None:
    text = encode_transparent(network, kind, HASH20)
    address = validate_address(text, network)
    # testnet and regtest share the prefixes, so the decoded network is TEST for both
    expected_network = ZcashNetwork.MAIN if network is ZcashNetwork.MAIN else ZcashNetwork.TEST
    assert (address.kind, address.network, address.receivers) == (kind, expected_network, {kind: HASH20})
    assert encode_transparent(address.network, kind, HASH20) == text


@pytest.mark.parametrize("network", ALL_NETWORKS)
def test_sapling_round_trip(network: ZcashNetwork) -> None:
    text = encode_sapling(network, SAPLING_RAW)
    address = validate_address(text, network)
    assert (address.text, address.kind, address.network, address.receivers) == (
        text,
        "sapling",
        network,
        {"sapling": SAPLING_RAW},
    )


@pytest.mark.parametrize("network", ALL_NETWORKS)
def test_tex_round_trip(network: ZcashNetwork) -> None:
    text = encode_tex(network, HASH20)
    address = validate_address(text, network)
    assert (address.kind, address.network, address.receivers) == ("tex", network, {"p2pkh": HASH20})
    assert address.transparent_receiver() == encode_transparent(network, "p2pkh", HASH20)


@pytest.mark.parametrize("network", ALL_NETWORKS)
@pytest.mark.parametrize(
    "receivers",
    [
        {"orchard": ORCHARD_RAW},
        {"sapling": SAPLING_RAW, "orchard": ORCHARD_RAW},
        {"p2pkh": HASH20, "sapling": SAPLING_RAW},
        {"p2sh": HASH20, "orchard": ORCHARD_RAW},
        {"unknown:5": bytes(range(40)), "orchard": ORCHARD_RAW, "p2pkh": HASH20},
        {"unknown:300": bytes(range(50))},  # CompactSize of 3 bytes; unknown items count as shielded
    ],
    ids=["orchard", "sapling+orchard", "p2pkh+sapling", "p2sh+orchard", "unknown+orchard+p2pkh", "unknown-only"],
)
def test_unified_round_trip(network: ZcashNetwork, receivers: dict[str, bytes]) -> None:
    text = encode_unified(network, receivers)
    address = validate_address(text, network)
    assert (address.text, address.kind, address.network, address.receivers) == (text, "unified", network, receivers)
    assert encode_unified(network, address.receivers) == text


@pytest.mark.parametrize("network", ALL_NETWORKS)
def test_transparent_receiver_of_unified_address_is_encoded_for_its_network(network: ZcashNetwork) -> None:
    address = decode_address(encode_unified(network, {"p2sh": HASH20, "sapling": SAPLING_RAW}))
    assert address.transparent_receiver() == encode_transparent(network, "p2sh", HASH20)


# --- case and whitespace ------------------------------------------------------------------------------------


def test_upper_case_bech32_is_accepted_and_lower_cased() -> None:
    address = decode_address(UA_P2PKH_SAPLING.upper())
    assert address.text == UA_P2PKH_SAPLING
    assert decode_address(ZCASHD_SAPLING.upper()).text == ZCASHD_SAPLING


@pytest.mark.parametrize("text", [ZCASHD_SAPLING, UA_P2PKH_SAPLING, TEX_PAIRS[0][0]])
def test_mixed_case_bech32_is_refused(text: str) -> None:
    mixed = text[:10] + text[10:].upper()
    assert "mixed upper and lower case" in refusal(mixed)


def test_surrounding_whitespace_is_ignored() -> None:
    assert decode_address(f"  {ZERO_P2PKH[ZcashNetwork.MAIN]}\n").text == ZERO_P2PKH[ZcashNetwork.MAIN]


@pytest.mark.parametrize("text", ["", "  \n"])
def test_empty_address_is_refused(text: str) -> None:
    assert "it is empty" in refusal(text)


# --- refusals -----------------------------------------------------------------------------------------------


def change_last_character(text: str) -> str:
    return text[:-1] + ("q" if text[-1] != "q" else "p")


@pytest.mark.parametrize(
    "text",
    [
        change_last_character(ZCASHD_SAPLING),
        change_last_character(UA_P2PKH_SAPLING),
        change_last_character(TEX_PAIRS[0][0]),
        ZCASHD_SAPLING[:-1],
    ],
    ids=["sapling", "unified", "tex", "sapling-truncated"],
)
def test_bech32_bad_checksum_is_refused(text: str) -> None:
    assert "bad checksum" in refusal(text)


def test_base58_bad_checksum_is_refused() -> None:
    text = ZERO_P2PKH[ZcashNetwork.MAIN]
    assert "bad Base58Check checksum" in refusal(text[:-1] + ("a" if text[-1] != "a" else "b"))


def test_unknown_base58_prefix_is_refused() -> None:
    bitcoin_address = base58.b58encode_check(b"\x00" + HASH20).decode()
    assert "unknown prefix 0x00" in refusal(bitcoin_address)


@pytest.mark.parametrize(
    "text",
    [
        "not an address",
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        # librustzcash: a well-formed Bech32m UA under an unknown HRP
        "uinvalid1ck5navqwcng43gvsxwrxsplc22p7uzlcag6qfa0zh09e87efq6rq8wsnv25umqjjravw70rl994n5ueuhza2fghge5gl7zrl2qp6cwmp",
    ],
)
def test_strings_that_are_no_zcash_address_are_refused(text: str) -> None:
    assert "not a Zcash address" in refusal(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (base58.b58encode_check(b"\x1c\xb8" + bytes(21)).decode(), "p2pkh payload must be 20 bytes, got 21"),
        (base58.b58encode_check(b"\x1c\xbd" + bytes(19)).decode(), "p2sh payload must be 20 bytes, got 19"),
        (base58.b58encode_check(b"\x16\x9a" + bytes(63)).decode(), "sprout payload must be 64 bytes, got 63"),
        (bech32_encode("zs", bytes(42), Bech32Variant.BECH32), "sapling payload must be 43 bytes, got 42"),
        (bech32_encode("tex", bytes(21), Bech32Variant.BECH32M), "tex payload must be 20 bytes, got 21"),
    ],
)
def test_wrong_payload_length_is_refused(text: str, problem: str) -> None:
    assert problem in refusal(text)


def test_sapling_with_bech32m_checksum_is_refused() -> None:
    text = bech32_encode("zs", SAPLING_RAW, Bech32Variant.BECH32M)
    assert "'zs' addresses must be encoded with Bech32" in refusal(text)


def test_unified_with_bech32_checksum_is_refused() -> None:
    jumbled = f4jumble(bytes([3, 43]) + ORCHARD_RAW + b"u".ljust(16, b"\x00"))
    assert "must be encoded with Bech32m" in refusal(bech32_encode("u", jumbled, Bech32Variant.BECH32))


def test_unified_with_only_transparent_receivers_is_refused() -> None:
    with pytest.raises(InvalidAddress, match="no shielded receiver"):
        encode_unified(ZcashNetwork.MAIN, {"p2pkh": HASH20})
    with pytest.raises(InvalidAddress, match="no shielded receiver"):
        encode_unified(ZcashNetwork.MAIN, {})


def test_unified_with_both_p2pkh_and_p2sh_is_refused() -> None:
    with pytest.raises(InvalidAddress, match="both a p2pkh and a p2sh receiver"):
        encode_unified(ZcashNetwork.MAIN, {"p2pkh": HASH20, "p2sh": HASH20, "sapling": SAPLING_RAW})
    text = raw_unified("u", [(0, HASH20), (1, HASH20)])
    assert "both a p2pkh and a p2sh receiver" in refusal(text)


def test_unified_with_typecodes_not_ascending_is_refused() -> None:
    text = raw_unified("u", [(3, ORCHARD_RAW), (2, SAPLING_RAW)])
    assert "typecodes are not in ascending order" in refusal(text)


def test_unified_with_a_repeated_typecode_is_refused() -> None:
    text = raw_unified("u", [(2, SAPLING_RAW), (2, SAPLING_RAW)])
    assert "typecode 2 appears twice" in refusal(text)


def test_unified_with_padding_of_another_network_is_refused() -> None:
    text = raw_unified("u", [(2, SAPLING_RAW)], padding_hrp="utest")
    assert "padding does not match" in refusal(text)


def test_unified_with_a_receiver_of_the_wrong_length_is_refused() -> None:
    text = raw_unified("u", [(2, SAPLING_RAW[:42])])
    assert "sapling receiver of 42 bytes, expected 43" in refusal(text)
    with pytest.raises(InvalidAddress, match="orchard receiver of 44 bytes"):
        encode_unified(ZcashNetwork.MAIN, {"orchard": ORCHARD_RAW + b"\x00"})


def test_unified_with_a_truncated_item_is_refused() -> None:
    body = bytes([3, 43]) + ORCHARD_RAW + bytes([2, 43]) + SAPLING_RAW[:10]
    text = bech32_encode("u", f4jumble(body + b"u".ljust(16, b"\x00")), Bech32Variant.BECH32M)
    assert "truncated item" in refusal(text)


@pytest.mark.parametrize(
    ("typecode", "problem"),
    [
        (b"\xfd\x03\x00", "non-canonical CompactSize"),  # 3 must be written in one byte
        (b"\xfe" + (0x02000001).to_bytes(4, "little"), "CompactSize too large"),
    ],
)
def test_unified_with_a_malformed_typecode_is_refused(typecode: bytes, problem: str) -> None:
    body = typecode + bytes([43]) + ORCHARD_RAW
    text = bech32_encode("u", f4jumble(body + b"u".ljust(16, b"\x00")), Bech32Variant.BECH32M)
    assert problem in refusal(text)


def test_unified_too_short_for_f4jumble_is_refused() -> None:
    text = bech32_encode("u", bytes(47), Bech32Variant.BECH32M)
    assert "payload of 47 bytes is outside 48..4194368" in refusal(text)


@pytest.mark.parametrize("name", ["transparent", "unknown:2", "unknown:x", "unknown:"])
def test_encode_unified_refuses_unknown_receiver_names(name: str) -> None:
    with pytest.raises(InvalidAddress, match="unknown receiver name"):
        encode_unified(ZcashNetwork.MAIN, {name: bytes(43), "orchard": ORCHARD_RAW})


def test_encoders_refuse_wrong_lengths_and_kinds() -> None:
    with pytest.raises(InvalidAddress, match="unknown transparent address kind 'p2wpkh'"):
        encode_transparent(ZcashNetwork.MAIN, "p2wpkh", HASH20)
    with pytest.raises(InvalidAddress, match="p2pkh payload must be 20 bytes, got 19"):
        encode_transparent(ZcashNetwork.MAIN, "p2pkh", HASH20[:19])
    with pytest.raises(InvalidAddress, match="sapling payload must be 43 bytes, got 44"):
        encode_sapling(ZcashNetwork.MAIN, SAPLING_RAW + b"\x00")
    with pytest.raises(InvalidAddress, match="tex payload must be 20 bytes, got 32"):
        encode_tex(ZcashNetwork.MAIN, bytes(32))


# --- networks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "network", "address_network"),
    [
        (ZERO_P2PKH[ZcashNetwork.MAIN], ZcashNetwork.TEST, "main"),
        (ZERO_P2PKH[ZcashNetwork.MAIN], ZcashNetwork.REGTEST, "main"),
        (ZERO_P2SH[ZcashNetwork.TEST], ZcashNetwork.MAIN, "test"),
        (ZERO_SPROUT[ZcashNetwork.TEST], ZcashNetwork.MAIN, "test"),
        (ZERO_SAPLING[ZcashNetwork.REGTEST], ZcashNetwork.TEST, "regtest"),
        (ZERO_SAPLING[ZcashNetwork.TEST], ZcashNetwork.REGTEST, "test"),
        (ZERO_SAPLING_UNIFIED[ZcashNetwork.TEST], ZcashNetwork.REGTEST, "test"),
        (UA_P2PKH_SAPLING, ZcashNetwork.TEST, "main"),
        (TEX_PAIRS[1][0], ZcashNetwork.REGTEST, "test"),  # TEX has its own regtest prefix
    ],
)
def test_wrong_network_is_refused(text: str, network: ZcashNetwork, address_network: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        validate_address(text, network)
    assert caught.value.code == "wrong_network"
    assert caught.value.message == f"address is for the {address_network} network, expected {network.value}"
    assert caught.value.details == {"address_network": address_network, "expected_network": network.value}


@pytest.mark.parametrize(
    "text",
    [ZERO_P2PKH[ZcashNetwork.TEST], ZERO_P2SH[ZcashNetwork.TEST], ZERO_SPROUT[ZcashNetwork.TEST]],
)
def test_testnet_transparent_and_sprout_prefixes_are_valid_on_regtest(text: str) -> None:
    on_regtest = validate_address(text, ZcashNetwork.REGTEST)
    assert on_regtest.network is ZcashNetwork.TEST
    assert validate_address(text, ZcashNetwork.TEST) == on_regtest


def test_validate_accepts_the_chain_name_as_a_plain_string() -> None:
    address = validate_address(ZERO_P2PKH[ZcashNetwork.TEST], "regtest")  # type: ignore[arg-type]
    assert address.network is ZcashNetwork.TEST


def test_validate_refuses_invalid_addresses_as_invalid_address() -> None:
    with pytest.raises(InvalidAddress) as caught:
        validate_address(change_last_character(UA_P2PKH_SAPLING), ZcashNetwork.MAIN)
    assert caught.value.code == "invalid_address"
