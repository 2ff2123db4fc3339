"""Writes the attested fixtures: the base fixture's transcript with a boot attestation added
(PCR records, a TPM quote, the verdicts and a deviation), re-signed with the root key
recombined from the fixture's shares. The quote is made here with a P-256 key in the layout
of docs/formats/tpm-quote.md (a software stand-in for a TPM: sherd-verify cannot tell them
apart, as that page says). Each scenario keeps only the files that differ from the base
fixture (testdata/attested/<name>/); the witness signatures are dropped (they signed the
base transcript). Run from the repository root:

    python3 verifiers/python/testdata/make_attested.py
    for d in verifiers/python/testdata/attested/*/; do \
        rm -rf /tmp/x && mkdir /tmp/x && \
        python3 verifiers/python/testdata/make_attested.py --assemble "$d" /tmp/x/folder && \
        (cd /tmp/x && sherd-verify folder) > "$d/sherd-verify.expected"; done

(the second step with sherd's own verifier, built by `cargo build -p ceremony --bin
sherd-verify`). The ECDSA signatures are randomized: regenerating changes the transcripts.
"""

import hashlib
import os
import shutil
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import sherd_verify as sv  # noqa: E402
import test_sherd_verify as tv  # noqa: E402

OUT = os.path.join(HERE, "attested")
KEEP = ["transcript.txt", "transcript.txt.sig", "plan.toml", "shards.toml"]


def tpm2b(b):
    return struct.pack(">H", len(b)) + b


class SoftTpm:
    """A P-256 attestation key with the fixed template's public area."""

    def __init__(self, scalar):
        self.key = ec.derive_private_key(scalar, ec.SECP256R1())
        n = self.key.public_key().public_numbers()
        self.public = (bytes.fromhex("0023000b00050072000000100018000b00030010")
                       + tpm2b(n.x.to_bytes(32, "big")) + tpm2b(n.y.to_bytes(32, "big")))
        self.name = b"\x00\x0b" + hashlib.sha256(self.public).digest()

    def quote(self, plan_hash, pcrs):
        signer = b"\x00\x0b" + hashlib.sha256(bytes.fromhex("4000000b") + self.name).digest()
        attest = (bytes.fromhex("ff5443478018") + tpm2b(signer) + tpm2b(plan_hash)
                  + struct.pack(">QIIB", 123456, 7, 0, 1) + struct.pack(">Q", 0x0002000100000000)
                  + bytes.fromhex("00000001000b03ff0000")
                  + tpm2b(hashlib.sha256(b"".join(pcrs)).digest()))
        r, s = utils.decode_dss_signature(self.key.sign(attest, ec.ECDSA(hashes.SHA256())))
        sig = (bytes.fromhex("0018000b") + tpm2b(r.to_bytes(32, "big"))
               + tpm2b(s.to_bytes(32, "big")))
        return (f"attest={attest.hex()} signature={sig.hex()} ak-public={self.public.hex()} "
                f"ak-name={self.name.hex()} ek-cert=none")


BOARD = {2: b"\x22" * 32, 5: b"\x55" * 32, 6: b"\x66" * 32, 7: b"\x77" * 32}


def pcr_values():
    return [sv.HEADS_VALUES.get(i, BOARD.get(i)) for i in range(8)]


def pcr_records(values):
    return [[f"tpm.pcr{i}-sha256",
             f"value={v.hex()} verdict={'PASS' if sv.HEADS_VALUES.get(i) == v else 'UNKNOWN'}"]
            for i, v in enumerate(values)]


def with_machine(c, records, machine_toml):
    """Adds a [machine] table to plan.toml; updates plan.hash, shards.toml and the listing."""
    old = records[1][1]
    c.write("plan.toml", c.read("plan.toml") + machine_toml.encode())
    plan = sv.Plan(c.read("plan.toml").decode())
    records[1][1] = plan.hash
    c.edit("shards.toml", old.encode(), plan.hash.encode())
    c.relist(records, "plan.toml")
    c.relist(records, "shards.toml")
    return plan


def scenario(name, build):
    c = tv.Copy()
    try:
        header, records = c.records()
        build(c, records)
        c.forge(records)
        dest = os.path.join(OUT, name)
        os.makedirs(dest, exist_ok=True)
        base = tv.Copy()
        for rel in KEEP:
            if c.read(rel) != base.read(rel):
                shutil.copy(c.path(rel), os.path.join(dest, rel))
        base.close()
    finally:
        c.close()


def insert_boot(records, values, after_quote):
    """PCR records first (the attestation comes before the plan), the quote and what follows
    it before the entropy records."""
    at = [k for k, _ in records].index("entropy.policy")
    records[at:at] = after_quote
    records[0:0] = pcr_records(values)


def heads_only(c, records):
    tpm, values = SoftTpm(0x5EED), pcr_values()
    quote = tpm.quote(bytes.fromhex(records[1][1]), values)
    dev = " ".join(f"pcr{i}=UNKNOWN pcr{i}-value={values[i].hex()}" for i in (2, 5, 6, 7))
    insert_boot(records, values, [
        ["tpm.quote", quote],
        ["attest.verdicts", "pcr0=PASS pcr1=PASS pcr2=UNKNOWN pcr3=PASS pcr4=PASS pcr5=UNKNOWN "
                            "pcr6=UNKNOWN pcr7=UNKNOWN quote=PASS"],
        ["attest.deviation", dev + ' reason="laptop values not yet recorded"'],
    ])


def recorded_laptop(c, records):
    tpm, values = SoftTpm(0x5EED), pcr_values()
    table = "\n[machine]\nname = \"laptop-1\"\n" + "".join(
        f'pcr{i} = "{v.hex().upper() if i % 2 else v.hex()}"\n' for i, v in enumerate(values)
    ) + f'quote_key = "{tpm.name.hex()}"\n'
    plan = with_machine(c, records, table)
    quote = tpm.quote(bytes.fromhex(plan.hash), values)
    insert_boot(records, values, [
        ["tpm.quote", quote],
        ["attest.verdicts", "machine=laptop-1 " + " ".join(f"pcr{i}=PASS" for i in range(8))
         + " quote=PASS quote-key=PASS"],
    ])


def pcr_changed_other_tpm(c, records):
    tpm, other, values = SoftTpm(0x5EED), SoftTpm(0xBAD), pcr_values()
    table = (f'\n[machine]\nname = "laptop-1"\npcr7 = "{values[7].hex()}"\n'
             f'quote_key = "{tpm.name.hex()}"\n')
    plan = with_machine(c, records, table)
    quoted = list(values)
    quoted[5] = b"\x56" * 32  # PCR5 extended between the attestation and the quote
    quote = other.quote(bytes.fromhex(plan.hash), quoted)
    dev = (" ".join(f"pcr{i}=UNKNOWN pcr{i}-value={values[i].hex()}" for i in (2, 5, 6))
           + f" quote=FAIL quote-key=FAIL quote-key-value={other.name.hex()}")
    insert_boot(records, values, [
        ["tpm.quote", quote],
        ["attest.verdicts", "machine=laptop-1 pcr0=PASS pcr1=PASS pcr2=UNKNOWN pcr3=PASS "
                            "pcr4=PASS pcr5=UNKNOWN pcr6=UNKNOWN pcr7=PASS quote=FAIL "
                            "quote-key=FAIL"],
        ["attest.deviation", dev + ' reason="rehearsal: \\"another\\" TPM, PCR5 moved"'],
    ])


def assemble(src, dest):
    shutil.copytree(tv.FOLDER, dest)
    shutil.rmtree(os.path.join(dest, "witness-signatures"))
    for rel in KEEP:
        if os.path.exists(os.path.join(src, rel)):
            shutil.copy(os.path.join(src, rel), os.path.join(dest, rel))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--assemble"]:
        assemble(sys.argv[2], sys.argv[3])
    else:
        scenario("heads-only", heads_only)
        scenario("recorded-laptop", recorded_laptop)
        scenario("pcr-changed-other-tpm", pcr_changed_other_tpm)
