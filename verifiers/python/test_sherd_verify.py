"""Tests of sherd_verify.py: the fixture passes with sherd-verify's own output, and tampered
copies of it are refused, each with a named failure. Run from the repository root:

    python3 -m unittest discover -s verifiers/python -v

The fixture (testdata/) was written by ceremony/examples/pyverify_fixture.rs (see README.md).
Some tampering must get past the root signature to reach a later check; the tests then act as
a forger who holds the root key: they recombine it from the fixture's decrypted shares
(throwaway keys) and re-sign the altered transcript.
"""

import base64
import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sherd_verify as sv  # noqa: E402

DATA = os.path.join(HERE, "testdata")
FOLDER = os.path.join(DATA, "sherd-pyverify")
SHARES = [os.path.join(DATA, "decrypted-shares", f"holder-{i}.env") for i in (1, 2, 3)]
FORMAT1 = os.path.join(HERE, "..", "..", "ceremony", "tests", "data", "format-1",
                       "sherd-format1-example")


def run(folder, *extra):
    out = io.StringIO()
    with redirect_stdout(out):
        code = sv.main([folder, *extra])
    return code, out.getvalue()


def root_secret():
    envs = []
    for p in SHARES[:2]:
        with open(p, "rb") as f:
            envs.append(sv.decode_envelope(f.read(), p))
    return sv.interpolate_at_zero([(e["index"], e["share"][1:]) for e in envs]), envs[0]


def armor(binary, kind="PGP SIGNATURE"):
    b64 = base64.b64encode(binary).decode()
    crc = base64.b64encode(sv.crc24(binary).to_bytes(3, "big")).decode()
    body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {kind}-----\n\n{body}\n={crc}\n-----END {kind}-----\n".encode()


def sign(data, seed, key_body, created):
    """A v4 binary-document signature over data by the Ed25519 key (legacy EdDSA), as the
    forger in these tests makes it."""
    fpr = bytes.fromhex(sv.Key(key_body).fingerprint)
    sub = lambda t, v: bytes([len(v) + 1, t]) + v  # noqa: E731
    hashed = sub(2, struct.pack(">I", created)) + sub(33, b"\x04" + fpr)
    part = bytes([4, 0x00, 22, 8]) + struct.pack(">H", len(hashed)) + hashed
    digest = hashlib.sha256(data + part + b"\x04\xff" + struct.pack(">I", len(part))).digest()
    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(digest)
    unhashed = sub(16, fpr[-8:])
    body = part + struct.pack(">H", len(unhashed)) + unhashed + digest[:2]
    body += sv.mpi(sig[:32].lstrip(b"\0")) + sv.mpi(sig[32:].lstrip(b"\0"))
    return bytes([0xC2, len(body)]) + body


class Copy:
    """A writable copy of the fixture folder."""

    def __init__(self, src=FOLDER):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "folder")
        shutil.copytree(src, self.dir)

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def read(self, rel):
        with open(self.path(rel), "rb") as f:
            return f.read()

    def write(self, rel, data):
        with open(self.path(rel), "wb") as f:
            f.write(data)

    def edit(self, rel, old, new, count=1):
        data = self.read(rel)
        assert old in data, (rel, old)
        self.write(rel, data.replace(old, new, count))

    def records(self):
        lines = self.read("transcript.txt").decode().rstrip("\n").split("\n")
        return lines[0], [line.split(" ", 3)[2:] for line in lines[1:]]

    def forge(self, records, header="sherd-transcript/2", time_shift=0):
        """Writes a transcript with these [kind, value] records, chained and re-signed by the
        root key (recombined from the fixture's shares), with the witness signatures dropped."""
        lines, prev = [header], hashlib.sha256(header.encode()).digest()
        for i, (kind, value) in enumerate(records):
            line = f"{i + 1} {prev.hex()} {kind} {value}"
            lines.append(line)
            prev = hashlib.sha256(line.encode()).digest()
        data = ("\n".join(lines) + "\n").encode()
        self.write("transcript.txt", data)
        secret, env = root_secret()
        seed = sv.hkdf32(secret, b"sherd/v1/root/primary/ed25519")
        primary, _ = sv.derive_root(secret, env["key_time"])
        self.write("transcript.txt.sig", armor(sign(data, seed, primary.body,
                                                             env["key_time"] + time_shift)))
        shutil.rmtree(self.path("witness-signatures"))

    def relist(self, records, rel):
        """Updates the output.file record of rel to the file's current size and hash."""
        data = self.read(rel)
        for r in records:
            if r[0] == "output.file" and r[1].startswith(f"path={rel} "):
                r[1] = f"path={rel} size={len(data)} sha256={hashlib.sha256(data).hexdigest()}"
                return
        raise AssertionError(rel)

    def close(self):
        self.tmp.cleanup()


class Base(unittest.TestCase):
    def setUp(self):
        self.c = Copy()
        self.addCleanup(self.c.close)

    def refused(self, code, *needles, shares=()):
        """Asserts the copy is refused with the named failure and message parts."""
        with self.assertRaises(sv.Failure) as cm:
            r = sv.verify_folder(self.c.dir)
            if shares:
                sv.check_shares(r, shares)
        msg = str(cm.exception)
        self.assertEqual(cm.exception.code, code, msg)
        for n in needles:
            self.assertIn(n, msg)
        # The command line says the same, as one FAIL line.
        status, out = run(self.c.dir, *(["--shares", *shares] if shares else []))
        self.assertEqual(status, 1)
        self.assertEqual(out, f"FAIL {self.c.dir}: {msg}\n")
        # With SHERD_VERIFY=<path of sherd's sherd-verify>, it must refuse the copy too (not
        # for --shares, which it does not have).
        rust = os.environ.get("SHERD_VERIFY")
        if rust and not shares:
            p = subprocess.run([rust, self.c.dir], capture_output=True, text=True)
            self.assertEqual(p.returncode, 1, p.stdout)
            if os.environ.get("SHERD_VERIFY_SHOW"):
                print(f"\n  ours: {msg}\n  sherd-verify: {p.stdout.strip()}", file=sys.stderr)
        return msg


class Passing(unittest.TestCase):
    def test_output_is_sherd_verifys(self):
        cwd = os.getcwd()
        os.chdir(DATA)
        try:
            status, out = run("sherd-pyverify")
        finally:
            os.chdir(cwd)
        self.assertEqual(status, 0)
        with open(os.path.join(DATA, "sherd-verify.expected")) as f:
            self.assertEqual(out, f.read())

    def test_format_3_output_is_sherd_verifys(self):
        """A format-3 folder as sherd writes it now (dual.* records), and its shares."""
        cwd = os.getcwd()
        os.chdir(os.path.join(DATA, "format-3"))
        try:
            status, out = run("sherd-pyverify")
            self.assertEqual(status, 0, out)
            with open("sherd-verify.expected") as f:
                self.assertEqual(out, f.read())
            status, out = run("sherd-pyverify", "--shares", "decrypted-shares/holder-3.env",
                              "decrypted-shares/holder-2.env")
        finally:
            os.chdir(cwd)
        self.assertEqual(status, 0, out)
        self.assertIn("shares 3, 2 recombine to the committed secret, which derives root key "
                      "8E210E8411C07ACC4D4603ADBE4A2A2E72660A36", out)

    def test_format_1_folder_from_the_rust_tests(self):
        if not os.path.isdir(FORMAT1):
            self.skipTest("ceremony/tests/data not present")
        status, out = run(FORMAT1)
        self.assertEqual(status, 0, out)
        self.assertIn("root fingerprint:  4D3A79FA25F8EF18FD081C4992E4C817CCE7E25E", out)
        self.assertIn("entropy:           not checked (format 1 records are free text)", out)

    def test_shares_recombine_in_any_subset(self):
        for picked in ([0, 1], [2, 0], [1, 2], [0, 1, 2]):
            status, out = run(FOLDER, "--shares", *[SHARES[i] for i in picked])
            self.assertEqual(status, 0, out)
            self.assertIn("recombine to the committed secret, which derives root key "
                          "8E210E8411C07ACC4D4603ADBE4A2A2E72660A36", out)

    def test_usage(self):
        with redirect_stdout(io.StringIO()), open(os.devnull, "w") as null:
            old, sys.stderr = sys.stderr, null
            try:
                self.assertEqual(sv.main([]), 2)
                self.assertEqual(sv.main([FOLDER, "--shares"]), 2)
                # Recovery mode: --recovery and --generation, each once; --files at most once.
                self.assertEqual(sv.main(["--recovery", FOLDER]), 2)
                self.assertEqual(sv.main(["--generation", FOLDER]), 2)
                self.assertEqual(sv.main(["--recovery", FOLDER, "--generation"]), 2)
                self.assertEqual(sv.main(["--recovery", FOLDER, "--recovery", FOLDER,
                                          "--generation", FOLDER]), 2)
                self.assertEqual(sv.main(["--recovery", FOLDER, "--generation", FOLDER,
                                          "--shares", FOLDER]), 2)
            finally:
                sys.stderr = old

    def test_a_generation_folder_is_not_a_recovery_folder(self):
        """Given as the recovery folder, the generation folder passes the checks up to the
        root signature (it is the root key's) and is refused at its first record."""
        status, out = run("--recovery", FOLDER, "--generation", FOLDER)
        self.assertEqual(status, 1)
        self.assertRegex(out, rf"^FAIL {FOLDER}: transcript.txt: record 1 is \"[a-z.-]+\", not "
                         "recovery.generation: this is not a recovery transcript\n$")


REQUESTS = os.path.join(DATA, "requests")


def read_request(name):
    with open(os.path.join(REQUESTS, name), encoding="utf-8") as f:
        return sv.Request(f.read())


class Requests(unittest.TestCase):
    """request.toml and its canonical hash (docs/formats/request.md). testdata/requests/
    hashes.txt gives the hash sherd computes for each request there (its Request::parse, in
    the Rust test ceremony/tests/python_verifier.rs, which keeps the file so); sherd refuses
    each request of refused/ (the same test)."""

    def test_the_hashes_are_sherds(self):
        with open(os.path.join(REQUESTS, "hashes.txt")) as f:
            expected = {name: h for h, name in (line.split("  ") for line in f.read().splitlines())}
        names = sorted(n for n in os.listdir(REQUESTS) if n.endswith(".toml"))
        self.assertEqual(sorted(expected), names)
        for name in names:
            with self.subTest(name):
                self.assertEqual(read_request(name).hash, expected[name])

    def test_the_documents_example(self):
        r = read_request("doc-example.toml")
        self.assertEqual(r.canonical, "sherd-request/1\nceremony_id=acme-root-2026\n"
                         "root_fingerprint=0123456789ABCDEF0123456789ABCDEF01234567\n"
                         "time=1803895200\noperation=sign\nfiles=1\nfile=9f86d081884c7d659a2feaa0c5"
                         "5ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\trelease-1.2.tar.gz\n")
        self.assertEqual(r.hash, "ba05744b16af9ce5d25ca3e8932962f4cc4b88fce6266c96ad218bc408fefce3")
        self.assertEqual(r.words.split()[:4], ["shadow", "almighty", "indoors", "disable"])
        self.assertEqual(r.words.split()[-1], "torpedo")

    def test_the_same_meaning_written_otherwise_hashes_the_same(self):
        self.assertEqual(read_request("sign-three-files.toml").hash,
                         read_request("sign-three-files-written-otherwise.toml").hash)
        self.assertEqual(read_request("certify-two-user-ids.toml").hash,
                         read_request("certify-rewrapped-armor.toml").hash)

    def test_the_order_of_the_files_counts(self):
        self.assertNotEqual(read_request("sign-two-files.toml").hash,
                            read_request("sign-two-files-swapped.toml").hash)

    def test_each_operations_lines(self):
        c = read_request("certify-two-user-ids.toml").canonical.splitlines()
        self.assertEqual(c[4:], [
            "operation=certify",
            "cert=8BF1297F004E69EA76A86F76F4A7EF9D66AD6A5A\t"
            + c[5].split("\t")[1],
            "user_ids=2", "user_id=Builder One (release key) <release@example.org>",
            "user_id=Builder One <b1@example.org>", "expiry=1835481600"])
        self.assertNotIn("expiry=", read_request("certify-one-user-id.toml").canonical)
        self.assertEqual(read_request("replace-card.toml").canonical.splitlines()[4:],
                         ["operation=replace-card", "holder=2", "cards=3"])
        r = read_request("reshare.toml")
        self.assertEqual(r.canonical.splitlines()[4:], ["operation=reshare", f"plan={r.plan.hash}"])
        self.assertEqual(r.plan.time, r.time)
        self.assertIsNone(r.plan.policy)
        self.assertIsNotNone(read_request("reshare-with-policy.toml").plan.policy)

    def test_refused(self):
        names = sorted(os.listdir(os.path.join(REQUESTS, "refused")))
        self.assertGreater(len(names), 20)
        for name in names:
            with self.subTest(name), self.assertRaises(ValueError):
                read_request(os.path.join("refused", name))


class Primitives(unittest.TestCase):
    def test_keys_md_vector(self):
        primary, sub = sv.derive_root(bytes(range(32)), 1800000000)
        self.assertEqual(primary.fingerprint, "A29223A2578B7B155DB7D34F9346B00F0233C50A")
        self.assertEqual(sub.fingerprint, "ACB9FADF6A2D934507AE87126ED65C42A17C7CF6")
        self.assertEqual(sv.commitment(bytes(range(32)), "vector-test").hex(),
                         "9fd69152b2529def6955c2dd7f1964cf0c8214e3690100c29add1c4c1b2c5a65")

    def test_aes_field(self):
        self.assertEqual(sv.gf_mul(0x57, 0x83), 0xC1)  # FIPS-197 section 4.2
        for a in range(1, 256):
            self.assertEqual(sv.gf_mul(a, sv.gf_inv(a)), 1)

    def test_interpolation_of_a_known_polynomial(self):
        # f(x) = 0x42 + 0x17 x + 0xA5 x^2 over GF(2^8)/0x11b; any 3 points give f(0).
        f = lambda x: 0x42 ^ sv.gf_mul(0x17, x) ^ sv.gf_mul(0xA5, sv.gf_mul(x, x))  # noqa: E731
        pts = [(x, bytes([f(x)])) for x in (3, 7, 200)]
        self.assertEqual(sv.interpolate_at_zero(pts), b"\x42")

    def test_pgp_words(self):
        # The worked example accompanying the published list.
        self.assertEqual(sv.pgp_words(bytes.fromhex("E58294F2E9A227486E8B061B31CC528FD7FA3F19")),
                         "topmost Istanbul Pluto vagabond treadmill Pacific brackish dictator "
                         "goldfish Medusa afflict bravado chatter revolver Dupont midsummer "
                         "stopwatch whimsical cowbell bottomless")

    def test_fields_one_spelling(self):
        self.assertEqual(sv.parse_fields('a=b c="x y" d="q\\"\\\\"'),
                         [("a", "b"), ("c", "x y"), ("d", 'q"\\')])
        for bad in ['a="b"', "a=", "a=b  c=d", "a=b ", 'a="x', 'a="\\n"', "A=b", 'a=x"y']:
            with self.assertRaises(sv.FieldError, msg=bad):
                sv.parse_fields(bad)


class Transcript(Base):
    def test_changed_record(self):
        self.c.edit("transcript.txt", b"serial=000F:000201", b"serial=000F:000209")
        self.refused("transcript", "transcript.txt: line 21: previous-hash",
                     "the chain is broken")

    def test_changed_last_record(self):
        self.c.edit("transcript.txt", b"ceremony.end files=6", b"ceremony.end files=7")
        self.refused("transcript", "transcript.txt.sig: the transcript signature does not verify")

    def test_reordered_records(self):
        lines = self.c.read("transcript.txt").split(b"\n")
        lines[12], lines[13] = lines[13], lines[12]
        self.c.write("transcript.txt", b"\n".join(lines))
        self.refused("transcript", "line 13: record number 13, expected 12",
                     "(records missing, repeated or reordered)")

    def test_truncated_transcript(self):
        data = self.c.read("transcript.txt")
        self.c.write("transcript.txt", data[:-40])
        self.refused("transcript", "must end with a newline")

    def test_last_records_cut_at_a_line(self):
        data = self.c.read("transcript.txt").split(b"\n")
        self.c.write("transcript.txt", b"\n".join(data[:-3]) + b"\n")
        self.refused("missing-record", "the last record is not ceremony.end")

    def test_quoted_value_that_should_be_bare(self):
        self.c.edit("transcript.txt", b"step=plan", b'step="plan"')
        self.refused("transcript", 'record 4: witness.confirm: step: "plan" must be written '
                     "without quotes")


class RootSignature(Base):
    def test_foreign_signature(self):
        # A signature over the very same bytes, but by a witness's key, not the root key.
        witness = self.c.read("witness-signatures/1.sig")
        self.c.write("transcript.txt.sig", armor(witness))
        self.refused("transcript", "transcript.txt.sig: the transcript signature does not verify",
                     "not made by the root certificate's primary key (it names another issuer")

    def test_signature_by_another_ed25519_key_naming_the_root(self):
        _, env = root_secret()
        data = self.c.read("transcript.txt")
        primary = sv.Key(sv.parse_armored_cert(self.c.read("root-cert.asc")).primary.body)
        self.c.write("transcript.txt.sig", armor(sign(data, b"\x07" * 32, primary.body,
                                                      env["key_time"])))
        self.refused("transcript", "bad signature")

    def test_truncated_signature(self):
        binary = sv.dearmor(self.c.read("transcript.txt.sig"), "PGP SIGNATURE")
        self.c.write("transcript.txt.sig", armor(binary[:-10]))
        self.refused("transcript", "truncated")

    def test_root_cert_replaced(self):
        loc = sv.ShardFile(self.c.read("shards.toml").decode()).shares[0]["location_cert"]
        self.c.write("root-cert.asc", armor(self.location_cert_binary(), "PGP PUBLIC KEY BLOCK"))
        self.refused("mismatch", "root certificate fingerprint (root-cert.asc): "
                     "transcript.txt record 10 (root.fingerprint) says "
                     "8E210E8411C07ACC4D4603ADBE4A2A2E72660A36, found " + loc.fingerprint)

    def location_cert_binary(self):
        import tomllib
        raw = tomllib.loads(self.c.read("shards.toml").decode())
        return sv.dearmor(raw["share"][0]["location_cert"], "PGP PUBLIC KEY BLOCK")


class Files(Base):
    def test_changed_plan(self):
        self.c.edit("plan.toml", b"cards = 2", b"cards = 3")
        self.refused("mismatch",
                     "SHA-256 of plan.toml: transcript.txt record 26 (output.file) says")

    def test_truncated_pin_file(self):
        data = self.c.read("pins/holder-002.asc")
        self.c.write("pins/holder-002.asc", data[: len(data) // 2])
        self.refused("mismatch", "SHA-256 of pins/holder-002.asc")

    def test_missing_file(self):
        os.remove(self.c.path("shards.toml"))
        self.refused("unreadable", "shards.toml: cannot read")

    def test_swapped_share(self):
        # Shares 1 and 2 exchanged in shards.toml (messages and their hashes).
        import tomllib
        text = self.c.read("shards.toml").decode()
        raw = tomllib.loads(text)
        a, b = raw["share"][0], raw["share"][1]
        for key in ("message", "message_sha256"):
            text = text.replace(a[key], "\0A").replace(b[key], a[key]).replace("\0A", b[key])
        self.c.write("shards.toml", text.encode())
        self.refused("mismatch", "SHA-256 of shards.toml")


class Forged(Base):
    """Tampering that also rewrites the transcript and re-signs it with the root key."""

    def test_forged_transcript_without_the_witnesses(self):
        header, records = self.c.records()
        self.c.forge(records)
        status, out = run(self.c.dir)
        self.assertEqual(status, 0, out)
        self.assertIn("signed by 0 of 2 witnesses; not signed: Wendy Witness, Walter Witness",
                      out)

    def test_root_signature_not_at_the_plan_time(self):
        header, records = self.c.records()
        self.c.forge(records, time_shift=3600)
        self.refused("mismatch", "creation time of transcript.txt.sig: plan.toml says 1795510800, "
                     "found 1795514400")

    def test_witness_signature_over_another_transcript(self):
        witness = self.c.read("witness-signatures/1.sig")
        header, records = self.c.records()
        self.c.forge(records[:-1] + [["witness.confirm", "name=Wendy step=plan"]] + records[-1:])
        os.mkdir(self.c.path("witness-signatures"))
        self.c.write("witness-signatures/1.sig", witness)
        self.refused("invalid", "witness-signatures/1.sig: not a good signature of witness 1 "
                     "(Wendy Witness) over transcript.txt",
                     "the digest does not match the signature's 16-bit check value")

    def test_witness_signature_swapped(self):
        self.c.write("witness-signatures/1.sig", self.c.read("witness-signatures/2.sig"))
        self.refused("invalid", "witness-signatures/1.sig: not a good signature of witness 1",
                     "not made by a live signing key of witness 1's certificates (it names "
                     "another issuer")

    def test_witness_signature_armored(self):
        self.c.write("witness-signatures/2.sig", armor(self.c.read("witness-signatures/2.sig")))
        self.refused("invalid", "witness-signatures/2.sig: not a good signature of witness 2",
                     "not a binary OpenPGP packet (ASCII armor or other data)")

    def test_witness_signature_truncated(self):
        data = self.c.read("witness-signatures/2.sig")
        self.c.write("witness-signatures/2.sig", data[:-5])
        self.refused("invalid", "witness-signatures/2.sig", "truncated")

    def test_required_witness_missing(self):
        header, records = self.c.records()
        self.c.edit("plan.toml", b"threshold = 2", b"require_witness_signatures = true\n"
                    b"threshold = 2")
        self.c.relist(records, "plan.toml")
        plan = sv.Plan(self.c.read("plan.toml").decode())
        records[1][1] = plan.hash
        self.c.edit("shards.toml",
                    b"4ec01d698381cfdb1552871b144fad7778d36ae3a2f1dc3257196b8def4bdcf3",
                    plan.hash.encode())
        self.c.relist(records, "shards.toml")
        self.c.forge(records)
        self.refused("missing-witness-signature", "witness-signatures/1.sig: missing: plan.toml "
                     "sets require_witness_signatures, and witness 1 (Wendy Witness) did not sign")

    def test_plan_hash(self):
        header, records = self.c.records()
        self.c.edit("plan.toml", b"cards = 2", b"cards = 1")
        self.c.relist(records, "plan.toml")
        self.c.forge(records)
        self.refused("mismatch", "canonical hash of plan.toml: transcript.txt record 2 "
                     "(plan.hash) says 4ec01d69")

    def test_out_of_order(self):
        header, records = self.c.records()
        records[13], records[16] = records[16], records[13]  # share.sealed after card.provisioned
        self.c.forge(records)
        self.refused("bad-record", "transcript.txt record 15 (share.sealed): out of the "
                     "ceremony's order: it comes after a card.provisioned record")

    def test_swapped_share_relisted(self):
        import tomllib
        header, records = self.c.records()
        text = self.c.read("shards.toml").decode()
        raw = tomllib.loads(text)
        a, b = raw["share"][0], raw["share"][1]
        for key in ("message", "message_sha256"):
            text = text.replace(a[key], "\0A").replace(b[key], a[key]).replace("\0A", b[key])
        self.c.write("shards.toml", text.encode())
        self.c.relist(records, "shards.toml")
        self.c.forge(records)
        self.refused("invalid", 'shards.toml: share 1 (index 1): message is encrypted to '
                     '["57EAE410108F6ED7"], expected exactly the location key '
                     "B264527908AA08694738D34191A766818B86432C")

    def test_share_message_not_in_the_sealed_form(self):
        # Share 2's message with a stray packet (a marker packet) after the encrypted data.
        import tomllib
        header, records = self.c.records()
        text = self.c.read("shards.toml").decode()
        share = tomllib.loads(text)["share"][1]
        binary = sv.dearmor(share["message"], "PGP MESSAGE") + bytes([0xCA, 3]) + b"PGP"
        new = armor(binary, "PGP MESSAGE").decode()
        digest = hashlib.sha256(binary).hexdigest()
        text = text.replace(share["message"], new).replace(share["message_sha256"], digest)
        self.c.write("shards.toml", text.encode())
        self.c.relist(records, "shards.toml")
        records[14][1] = f"holder=2 sha256={digest}"
        self.c.forge(records)
        self.refused("invalid", "shards.toml: share 2 (index 2): message: not the sealed form "
                     "(PKESK packets, then one SEIPD v1 packet): packet 3 has tag 10")

    def test_swapped_share_records(self):
        header, records = self.c.records()
        records[13][1], records[14][1] = records[14][1], records[13][1]
        self.c.forge(records)
        self.refused("bad-record", "transcript.txt record 14 (share.sealed): holder=2 where "
                     "share 1 of shards.toml is, in plan order")

    def test_card_twice(self):
        header, records = self.c.records()
        records[18][1] = records[18][1].replace("serial=000F:000201", "serial=000F:000101")
        self.c.forge(records)
        self.refused("bad-record", "record 19 (card.provisioned): card serial 000F:000101 was "
                     "already used in record 17")

    def test_output_count(self):
        header, records = self.c.records()
        records[-1][1] = "files=5"
        self.c.forge(records)
        self.refused("mismatch", "number of output.file records: transcript.txt record 32 "
                     "(ceremony.end) says 5, found 6")

    def test_subsets(self):
        header, records = self.c.records()
        records[23][1] = "checked=2 total=3 policy=all"
        self.c.forge(records)
        self.refused("mismatch", "record 24 (verify.subsets) checked=", "says 3, found 2")

    def test_pin_recipients(self):
        header, records = self.c.records()
        v = records[20][1]
        fprs = v.split("recipients=")[1].split(",")
        records[20][1] = v.split("recipients=")[0] + "recipients=" + ",".join(fprs[::-1])
        self.c.forge(records)
        self.refused("mismatch", "transcript.txt record 21 (pins.sealed) recipients")

    def test_output_path_leaving_the_folder(self):
        header, records = self.c.records()
        records[25][1] = records[25][1].replace("path=plan.toml", "path=../folder/plan.toml")
        self.c.forge(records)
        self.refused("unreadable", "../folder/plan.toml: cannot read: path leaves the folder")

    def test_counted_virtual_entropy(self):
        header, records = self.c.records()
        records[5][1] = records[5][1].replace("virtual=no", "virtual=swtpm")
        self.c.forge(records)
        self.refused("bad-record", "record 6 (entropy.source): /dev/tpmrm0: TPM 2.0 test: "
                     "counted, but virtual (swtpm)")


def assemble(name, dest):
    """The attested scenario `name` as a whole folder (see testdata/make_attested.py)."""
    import shutil as _sh
    src = os.path.join(DATA, "attested", name)
    _sh.copytree(FOLDER, dest)
    _sh.rmtree(os.path.join(dest, "witness-signatures"))
    for rel in os.listdir(src):
        if rel != "sherd-verify.expected":
            _sh.copy(os.path.join(src, rel), os.path.join(dest, rel))


class Dual(Base):
    """Check 15: the second implementations' records, required in a format-3 transcript (the
    fixture is format 2, written before them: these tests forge format-3 copies)."""

    DUAL = [["dual.shamir", "second=shamir-gf256 splits=1 shares=3 combinations=6"],
            ["dual.signatures", "second=ed25519-compact-2.6.1 checks=10"],
            ["dual.fingerprint", "second=sherd-dual-rfc5869-rfc4880+sha1-0.11 checks=8 hkdf=2"]]

    def format_3(self, edit=lambda dual: None):
        header, records = self.c.records()
        at = [k for k, _ in records].index("verify.self-test") + 1
        dual = [list(r) for r in self.DUAL]
        edit(dual)
        self.c.forge(records[:at] + dual + records[at:], header="sherd-transcript/3")

    def test_the_fixture_is_format_2_and_says_so(self):
        status, out = run(self.c.dir)
        self.assertEqual(status, 0, out)
        self.assertIn("dual:              not recorded (sherd-transcript/2: written before sherd "
                      "recorded its second implementations' checks)\n", out)

    def test_format_3_with_the_records_passes_as_sherd_verify_says(self):
        self.format_3()
        status, out = run(self.c.dir)
        self.assertEqual(status, 0, out)
        self.assertIn("dual:              1 split and 6 combinations (shamir-gf256), 10 "
                      "signatures (ed25519-compact-2.6.1), 8 fingerprints and 2 HKDF outputs "
                      "(sherd-dual-rfc5869-rfc4880+sha1-0.11) agreed\n", out)
        rust = os.environ.get("SHERD_VERIFY")
        if rust:
            p = subprocess.run([rust, self.c.dir], capture_output=True, text=True)
            self.assertEqual((p.returncode, p.stdout), (0, out))

    def test_format_3_without_them_is_refused_naming_them(self):
        self.format_3(lambda dual: dual.__delitem__(slice(0, 2)))
        self.refused("missing-record", "transcript.txt: no dual.shamir, dual.signatures record: "
                     "a sherd-transcript/3 transcript must record what the second "
                     "implementations cross-checked")

    def test_wrong_counts_are_refused(self):
        def fewer_signatures(dual):
            dual[1][1] = "second=ed25519-compact-2.6.1 checks=9"
        self.format_3(fewer_signatures)
        self.refused("mismatch", "(dual.signatures) checks=: plan.toml (N=3: 3 self-signatures, "
                     "N envelopes, N PIN files, the self-test: 2N + 4) says 10, found 9")

    def test_too_few_combinations_are_refused(self):
        def fewer(dual):
            dual[0][1] = "second=shamir-gf256 splits=1 shares=3 combinations=3"
        self.format_3(fewer)
        self.refused("bad-record", "(dual.shamir): combinations=3, but verify.subsets checked 3 "
                     "subsets and the cards' decryptions were recombined too: at least 4")

    def test_out_of_place_is_refused(self):
        header, records = self.c.records()
        at = [k for k, _ in records].index("verify.subsets")
        self.c.forge(records[:at] + [list(r) for r in self.DUAL] + records[at:],
                     header="sherd-transcript/3")
        self.refused("bad-record", "(verify.subsets): out of the ceremony's order: it comes "
                     "after a dual.fingerprint record")


class Attested(Base):
    """Boot attestation (checks 13 and 14) on the attested scenarios, whose expected output
    sherd-verify wrote."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.c = Copy.__new__(Copy)
        self.c.tmp = self.tmp
        self.c.dir = os.path.join(self.tmp.name, "folder")

    def test_as_sherd_verify_says(self):
        for name in ("heads-only", "recorded-laptop", "pcr-changed-other-tpm"):
            with self.subTest(name):
                shutil.rmtree(self.c.dir, ignore_errors=True)
                assemble(name, self.c.dir)
                cwd = os.getcwd()
                os.chdir(self.tmp.name)
                try:
                    status, out = run("folder")
                finally:
                    os.chdir(cwd)
                self.assertEqual(status, 0, out)
                with open(os.path.join(DATA, "attested", name, "sherd-verify.expected")) as f:
                    self.assertEqual(out, f.read())

    def reforge(self, name, edit):
        assemble(name, self.c.dir)
        os.mkdir(self.c.path("witness-signatures"))
        header, records = self.c.records()
        edit(records)
        self.c.forge(records)

    @staticmethod
    def at(records, kind):
        return [k for k, _ in records].index(kind)

    def test_claimed_pass(self):
        def edit(r):
            i = self.at(r, "attest.verdicts")
            r[i][1] = r[i][1].replace("pcr2=UNKNOWN", "pcr2=PASS")
        self.reforge("heads-only", edit)
        self.refused("mismatch", "boot verdicts: the PCR values recorded at the attestation, "
                     "the plan's [machine] table and the quote says pcr0=PASS pcr1=PASS "
                     "pcr2=UNKNOWN", "found pcr0=PASS pcr1=PASS pcr2=PASS")

    def test_no_deviation(self):
        self.reforge("heads-only", lambda r: r.pop(self.at(r, "attest.deviation")))
        self.refused("missing-record", "transcript.txt: pcr2 pcr5 pcr6 pcr7 not PASS and no "
                     "attest.deviation records why the ceremony went on")

    def test_deviation_hides_an_item(self):
        def edit(r):
            i = self.at(r, "attest.deviation")
            r[i][1] = r[i][1].replace("pcr7=UNKNOWN pcr7-value=" + "77" * 32 + " ", "")
        self.reforge("heads-only", edit)
        self.refused("mismatch", "deviation: the items not PASS, with their values says")

    def test_short_reason(self):
        def edit(r):
            i = self.at(r, "attest.deviation")
            r[i][1] = r[i][1].split(" reason=")[0] + " reason=because"
        self.reforge("heads-only", edit)
        self.refused("bad-record", "(attest.deviation): the reason has 7 characters")

    def test_heads_rules_at_the_attestation(self):
        def edit(r):
            r[0][1] = r[0][1].replace("verdict=PASS", "verdict=UNKNOWN")
        self.reforge("heads-only", edit)
        self.refused("bad-record", "transcript.txt record 1 (tpm.pcr<N>-sha256): verdict=UNKNOWN, "
                     "but by Heads' rules PCR0 is PASS exactly when it holds Heads' value")

    def test_quote_over_another_plan(self):
        # The verdicts still say quote=PASS: recomputed, the quote fails.
        def edit(r):
            i = self.at(r, "tpm.quote")
            plan_hash = r[self.at(r, "plan.hash")][1]
            self.assertIn(plan_hash, r[i][1])
            r[i][1] = r[i][1].replace(plan_hash, "00" * 32, 1)
        self.reforge("heads-only", edit)
        self.refused("mismatch", "boot verdicts", "quote=FAIL, found")

    def test_ak_name(self):
        def edit(r):
            i = self.at(r, "tpm.quote")
            name = r[i][1].split("ak-name=")[1].split(" ")[0]
            r[i][1] = r[i][1].replace(name, "000b" + "00" * 32)
        self.reforge("recorded-laptop", edit)
        self.refused("mismatch", "attestation key name: the key in tpm.quote ak-public= says 000b")

    def test_failed_quote_without_verdicts(self):
        def edit(r):
            i = self.at(r, "attest.verdicts")
            del r[i : i + 2]
        self.reforge("pcr-changed-other-tpm", edit)
        self.refused("missing-record", "the TPM quote does not verify (a PCR changed since the "
                     "attestation: quoted values differ) and no attest.deviation")

    def test_quote_after_the_root_key(self):
        def edit(r):
            q = r.pop(self.at(r, "tpm.quote"))
            r.insert(self.at(r, "root.fingerprint") + 1, q)
        self.reforge("heads-only", edit)
        self.refused("bad-record", "(tpm.quote): outside its place")


class Mutations(Base):
    """Seeded random byte changes in the OpenPGP data the verifier parses: always a FAIL
    naming the file, never a crash (a Python exception), and a PASS only for a change in a
    signature's unhashed subpackets."""

    def mutate(self, rel, binary_of, rewrap, count=150):
        import random
        rnd = random.Random(rel)
        original = self.c.read(rel)
        binary = binary_of(original)
        for _ in range(count):
            data = bytearray(binary)
            for _ in range(rnd.choice([1, 1, 2, 3])):
                what = rnd.random()
                i = rnd.randrange(len(data))
                if what < 0.7:
                    data[i] = rnd.randrange(256)
                elif what < 0.85:
                    del data[i:]
                else:
                    data.insert(i, rnd.randrange(256))
            if bytes(data) == binary:
                continue
            self.c.write(rel, rewrap(bytes(data)))
            try:
                sv.verify_folder(self.c.dir)
            except sv.Failure as e:
                self.assertIn(rel, str(e))
            else:
                # Only the unhashed subpackets of a signature are not covered by it (RFC 4880
                # 5.2.3): a change there alone may pass.
                if not rel.endswith(".sig"):
                    self.fail(f"{rel} changed to {bytes(data).hex()} passed")
                old, new = sv.one_signature_packet(binary), sv.one_signature_packet(bytes(data))
                if (old.hashed_part, old.mpis) != (new.hashed_part, new.mpis):
                    self.fail(f"{rel} changed to {bytes(data).hex()} passed")
        self.c.write(rel, original)

    def test_root_certificate(self):
        self.mutate("root-cert.asc", lambda b: sv.dearmor(b, "PGP PUBLIC KEY BLOCK"),
                    lambda b: armor(b, "PGP PUBLIC KEY BLOCK"))

    def test_transcript_signature(self):
        self.mutate("transcript.txt.sig", lambda b: sv.dearmor(b, "PGP SIGNATURE"), armor)

    def test_witness_signature(self):
        self.mutate("witness-signatures/1.sig", lambda b: b, lambda b: b)


@unittest.skipUnless(os.environ.get("SHERD_VERIFY"), "set SHERD_VERIFY to sherd-verify's path")
class Differential(unittest.TestCase):
    """Seeded random edits of the transcript (and a list of plan edits), each re-signed; this
    verifier and sherd-verify must agree on PASS or FAIL, and on the message of the
    transcript's failures up to the differences the README lists."""

    def judge(self, c):
        try:
            sv.verify_folder(c.dir)
            ours = "PASS"
        except sv.Failure as e:
            ours = f"FAIL {e}"
        p = subprocess.run([os.environ["SHERD_VERIFY"], c.dir], capture_output=True, text=True)
        first = p.stdout.splitlines()[0]
        theirs = "PASS" if first.startswith("PASS") else "FAIL " + first.split(": ", 1)[1]
        return ours, theirs

    def test_transcript_edits(self):
        import random
        rnd = random.Random(7)
        chars = [" ", '"', "\\", "=", "a", "0", "\u00e9", "Z", ",", "-", "\u00a0", "9"]
        for n in range(int(os.environ.get("SHERD_VERIFY_EDITS", "60"))):
            c = Copy()
            self.addCleanup(c.close)
            base = rnd.choice([None, "heads-only", "pcr-changed-other-tpm", "recorded-laptop"])
            if base:
                shutil.rmtree(c.dir)
                assemble(base, c.dir)
                os.mkdir(c.path("witness-signatures"))
            header, records = c.records()
            i = rnd.randrange(len(records))
            kind, value = records[i]
            op = rnd.random()
            if op < 0.5:
                j = rnd.randrange(len(value) + 1)
                value = value[:j] + rnd.choice(chars) + value[j:]
            elif op < 0.8 and len(value) > 1:
                j = rnd.randrange(len(value))
                value = value[:j] + value[j + 1 :]
            elif op < 0.9:
                k = rnd.randrange(len(records))
                records[i], records[k] = records[k], records[i]
                kind, value = records[i]
            else:
                fields = value.split(" ")
                value = " ".join(fields + [rnd.choice(fields)])
            records[i] = [kind, value]
            c.forge(records)
            ours, theirs = self.judge(c)
            with self.subTest(n=n, base=base, record=records[i]):
                self.assertEqual(ours.split(" ")[0], theirs.split(" ")[0], (ours, theirs))
                if ours.startswith("FAIL transcript.txt"):
                    self.assertEqual(ours, theirs)

    def test_plan_edits(self):
        old = "4ec01d698381cfdb1552871b144fad7778d36ae3a2f1dc3257196b8def4bdcf3"
        for before, after in [
            ("threshold = 2", "threshold = 2  # a comment"),
            ("threshold = 2", "threshold = 2\nallow_virtual_hardware = true"),
            ("threshold = 2", "threshold = 1\nallow_threshold_one = true"),
            ("threshold = 2", "threshold = 4"),
            ("threshold = 2", "threshold = 2\nfoo = 1"),
            ("time = 2026-11-24T09:00:00Z", "time = 2026-11-24T09:00:00+00:00"),
            ("time = 2026-11-24T09:00:00Z", "time = 2026-11-24 09:00:00Z"),
            ('name = "Holder 002"', 'name = "Holder 002 "'),
            ('name = "Wendy Witness"', 'name = "Walter Witness"'),
            ('backup = "Holder 002"', 'backup = "Holder 003"'),
            ("cards = 2", "cards = 9"),
            ('ceremony_id = "pyverify"', 'ceremony_id = "Pyverify"'),
            ("threshold = 2", "threshold = 2\nrequire_witness_signatures = true"),
            (None, '\n[machine]\nname = "laptop"\npcr3 = "' + "Ab" * 32 + '"\n'),
        ]:
            c = Copy()
            self.addCleanup(c.close)
            header, records = c.records()
            text = c.read("plan.toml").decode()
            text = text + after if before is None else text.replace(before, after, 1)
            c.write("plan.toml", text.encode())
            c.relist(records, "plan.toml")
            try:
                records[1][1] = sv.Plan(text).hash
            except ValueError:
                pass
            c.edit("shards.toml", old.encode(), records[1][1].encode())
            c.relist(records, "shards.toml")
            c.forge(records)
            ours, theirs = self.judge(c)
            with self.subTest(after=after):
                self.assertEqual(ours.split(" ")[0], theirs.split(" ")[0], (ours, theirs))


# --- Building certificates, for the witness certificate tests -------------------------------

def packet(tag, body):
    """A new-format packet (one-, two- or five-octet length)."""
    n = len(body)
    if n < 192:
        head = bytes([n])
    elif n < 8384:
        head = bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    else:
        head = b"\xff" + struct.pack(">I", n)
    return bytes([0xC0 | tag]) + head + body


def subpacket(typ, value):
    n = len(value) + 1
    head = bytes([n]) if n < 192 else bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    return head + bytes([typ]) + value


def ed_key(seed, created):
    """The body of a v4 Ed25519 (legacy EdDSA) key packet for this seed."""
    from cryptography.hazmat.primitives import serialization as ser
    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        ser.Encoding.Raw, ser.PublicFormat.Raw)
    oid = sv.OID_ED25519
    return b"\x04" + struct.pack(">I", created) + b"\x16" + bytes([len(oid)]) + oid + \
        sv.mpi(b"\x40" + pub)


def sig_body(sigtype, data, seed, key_body, created, hashed=b"", hash_algo=8):
    """The body of a v4 signature packet by the Ed25519 key over data (the hashed material)."""
    name = {2: "sha1", 8: "sha256", 10: "sha512"}[hash_algo]
    fpr = bytes.fromhex(sv.Key(key_body).fingerprint)
    area = subpacket(2, struct.pack(">I", created)) + subpacket(33, b"\x04" + fpr) + hashed
    part = bytes([4, sigtype, 22, hash_algo]) + struct.pack(">H", len(area)) + area
    digest = hashlib.new(name, data + part + b"\x04\xff" + struct.pack(">I", len(part))).digest()
    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(digest)
    unhashed = subpacket(16, fpr[-8:])
    return (part + struct.pack(">H", len(unhashed)) + unhashed + digest[:2]
            + sv.mpi(sig[:32].lstrip(b"\0")) + sv.mpi(sig[32:].lstrip(b"\0")))


def witness_cert(t, subkeys, primary_flags=0x01, primary_expires=None, uid_hash=8):
    """A witness's certificate: an Ed25519 primary key created 30 days before t, user ID
    "Wendy Witness", and `subkeys`, each a dict: seed, created, flags, expires (seconds after
    creation), revoked, backsig (default True), hash (of the binding, default SHA-256)."""
    pseed, pcreated = b"\x31" * 32, t - 30 * 86400
    primary = ed_key(pseed, pcreated)
    pm = sv.Key(primary).hash_material()
    uid = b"Wendy Witness"
    hashed = subpacket(27, bytes([primary_flags])) + subpacket(25, b"\x01")
    if primary_expires is not None:
        hashed += subpacket(9, struct.pack(">I", primary_expires))
    out = packet(6, primary) + packet(13, uid) + packet(2, sig_body(
        0x13, pm + sv.uid_material(uid), pseed, primary, pcreated, hashed, uid_hash))
    for k in subkeys:
        body = ed_key(k["seed"], k["created"])
        material = pm + sv.Key(body).hash_material()
        hashed = subpacket(27, bytes([k.get("flags", 0x02)]))
        if k.get("expires") is not None:
            hashed += subpacket(9, struct.pack(">I", k["expires"]))
        if k.get("backsig", True):
            back = sig_body(0x19, material, k["seed"], body, k["created"])
            hashed += subpacket(32, back)
        out += packet(14, body) + packet(2, sig_body(
            0x18, material, pseed, primary, k["created"], hashed, k.get("hash", 8)))
        if k.get("revoked"):
            out += packet(2, sig_body(0x28, material, pseed, primary, t - 86400,
                                      subpacket(29, b"\x01")))  # reason: superseded
    return out, pseed, primary


class WitnessCertificates(Base):
    """Witness 1's certificate replaced by one built here, and a signature by one of its keys
    over the (re-signed) transcript: the certificate policy at the plan time decides."""

    T = 1795510800

    def run_with(self, cert, signer_seed, signer_body, created=None, hash_algo=8):
        header, records = self.c.records()
        text = self.c.read("plan.toml").decode()
        start = text.index('name = "Wendy Witness"\ncerts = [\'\'\'\n') + len(
            'name = "Wendy Witness"\ncerts = [\'\'\'\n')
        end = text.index("\'\'\']", start)
        text = text[:start] + armor(cert, "PGP PUBLIC KEY BLOCK").decode() + text[end:]
        old = records[1][1]
        self.c.write("plan.toml", text.encode())
        self.c.relist(records, "plan.toml")
        try:
            records[1][1] = sv.Plan(text).hash
        except ValueError:
            pass  # the plan is refused before its hash is compared: the old one will do
        self.c.edit("shards.toml", old.encode(), records[1][1].encode())
        self.c.relist(records, "shards.toml")
        self.c.forge(records)
        os.mkdir(self.c.path("witness-signatures"))
        transcript = self.c.read("transcript.txt")
        body = sig_body(0x00, transcript, signer_seed, signer_body,
                        self.T if created is None else created, b"", hash_algo)
        self.c.write("witness-signatures/1.sig", packet(2, body))

    def sub(self, **k):
        k.setdefault("seed", b"\x41" * 32)
        k.setdefault("created", self.T - 86400)
        return k

    def signed(self):
        status, out = run(self.c.dir)
        self.assertEqual(status, 0, out)
        self.assertIn("signed by 1 of 2 witnesses: Wendy Witness; not signed: Walter Witness",
                      out)
        rust = os.environ.get("SHERD_VERIFY")
        if rust:
            p = subprocess.run([rust, self.c.dir], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stdout)

    def test_signing_subkey(self):
        k = self.sub()
        cert, _, _ = witness_cert(self.T, [k])
        self.run_with(cert, k["seed"], ed_key(k["seed"], k["created"]))
        self.signed()

    def test_sha512_signature(self):
        k = self.sub()
        cert, _, _ = witness_cert(self.T, [k])
        self.run_with(cert, k["seed"], ed_key(k["seed"], k["created"]), hash_algo=10)
        self.signed()

    def test_signing_primary(self):
        cert, pseed, primary = witness_cert(self.T, [], primary_flags=0x03)
        self.run_with(cert, pseed, primary)
        self.signed()

    def test_primary_not_for_signing(self):
        cert, pseed, primary = witness_cert(self.T, [self.sub()])
        self.run_with(cert, pseed, primary)
        self.refused("invalid", "witness-signatures/1.sig: not a good signature of witness 1")

    def test_signature_not_at_the_plan_time(self):
        k = self.sub()
        cert, _, _ = witness_cert(self.T, [k])
        self.run_with(cert, k["seed"], ed_key(k["seed"], k["created"]), created=self.T + 1)
        self.refused("invalid", "witness-signatures/1.sig", "made at 2026-11-24T09:00:01Z, "
                     "not at the plan time 2026-11-24T09:00:00Z")

    def test_sha1_signature(self):
        k = self.sub()
        cert, _, _ = witness_cert(self.T, [k])
        self.run_with(cert, k["seed"], ed_key(k["seed"], k["created"]), hash_algo=2)
        self.refused("invalid", "witness-signatures/1.sig", "hash algorithm 2 is not accepted")

    def test_by_a_revoked_subkey_beside_a_live_one(self):
        live, gone = self.sub(), self.sub(seed=b"\x42" * 32, revoked=True)
        cert, _, _ = witness_cert(self.T, [live, gone])
        self.run_with(cert, gone["seed"], ed_key(gone["seed"], gone["created"]))
        self.refused("invalid", "witness-signatures/1.sig: not a good signature of witness 1")

    def test_by_an_expired_subkey_beside_a_live_one(self):
        live, gone = self.sub(), self.sub(seed=b"\x42" * 32, expires=3600)
        cert, _, _ = witness_cert(self.T, [live, gone])
        self.run_with(cert, gone["seed"], ed_key(gone["seed"], gone["created"]))
        self.refused("invalid", "witness-signatures/1.sig: not a good signature of witness 1")

    def test_by_a_subkey_without_back_signature_beside_a_live_one(self):
        live, bare = self.sub(), self.sub(seed=b"\x42" * 32, backsig=False)
        cert, _, _ = witness_cert(self.T, [live, bare])
        self.run_with(cert, bare["seed"], ed_key(bare["seed"], bare["created"]))
        self.refused("invalid", "witness-signatures/1.sig: not a good signature of witness 1")

    def test_only_key_not_live(self):
        for name, k, primary_expires in [
            ("expired", self.sub(expires=3600), None),
            ("revoked", self.sub(revoked=True), None),
            ("no back-signature", self.sub(backsig=False), None),
            ("created after the plan time", self.sub(created=self.T + 60), None),
            ("SHA-1 binding", self.sub(hash=2), None),
            ("primary key expired", self.sub(), 86400),
        ]:
            with self.subTest(name):
                self.c.close()
                self.c = Copy()
                self.addCleanup(self.c.close)
                cert, _, _ = witness_cert(self.T, [k], primary_expires=primary_expires)
                self.run_with(cert, k["seed"], ed_key(k["seed"], k["created"]))
                self.refused("invalid", "plan.toml: witness 1: certificate",
                             "has no live signing key at the plan time")


class RootCertificates(Base):
    """root-cert.asc rebuilt with the root key (recombined from the shares), same key packets
    and so the same fingerprint, but other flags or subkeys; listed and re-signed."""

    def rebuild(self, primary_flags=0x03, sub_flags=0x0C, extra_subkey=False, direct=True):
        secret, env = root_secret()
        t = env["key_time"]
        seed = sv.hkdf32(secret, b"sherd/v1/root/primary/ed25519")
        primary, sub = sv.derive_root(secret, t)
        pm = primary.hash_material()
        uid = b"sherd root key (pyverify)"
        flags = subpacket(27, bytes([primary_flags]))
        cert = packet(6, primary.body)
        if direct:
            cert += packet(2, sig_body(0x1F, pm, seed, primary.body, t, flags))
        cert += packet(13, uid) + packet(2, sig_body(0x13, pm + sv.uid_material(uid), seed,
                                                      primary.body, t, flags))
        subs = [sub.body] + ([ed_key(b"\x51" * 32, t)] if extra_subkey else [])
        for body in subs:
            cert += packet(14, body) + packet(2, sig_body(
                0x18, pm + sv.Key(body).hash_material(), seed, primary.body, t,
                subpacket(27, bytes([sub_flags]))))
        header, records = self.c.records()
        self.c.write("root-cert.asc", armor(cert, "PGP PUBLIC KEY BLOCK"))
        self.c.relist(records, "root-cert.asc")
        self.c.forge(records)

    def test_rebuilt_passes(self):
        self.rebuild()
        status, out = run(self.c.dir)
        self.assertEqual(status, 0, out)
        rust = os.environ.get("SHERD_VERIFY")
        if rust:
            p = subprocess.run([rust, self.c.dir], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stdout)

    def test_primary_certify_only(self):
        self.rebuild(primary_flags=0x01)
        self.refused("invalid", "root-cert.asc: primary key is not marked for certification "
                     "and signing")

    def test_subkey_not_for_encryption(self):
        self.rebuild(sub_flags=0x04)
        self.refused("invalid", "root-cert.asc: subkey is not marked for encryption")

    def test_two_subkeys(self):
        self.rebuild(extra_subkey=True)
        self.refused("invalid", "root-cert.asc: expected one subkey, found 2")


class Shares(Base):
    def read(self, i):
        with open(SHARES[i], "rb") as f:
            return bytearray(f.read())

    def write(self, name, data):
        p = os.path.join(self.c.tmp.name, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def test_too_few(self):
        self.refused("share", "1 share(s) given, 2 needed", shares=SHARES[:1])

    def test_same_share_twice(self):
        self.refused("share", "share 1 given twice (identical copies)",
                     shares=[SHARES[0], self.write("copy.env", self.read(0))])

    def test_corrupt_share_with_exactly_m(self):
        e = self.read(1)
        e[-1] ^= 1
        self.refused("share", "no subset of the shares recombines to the committed secret: "
                     "bring one more share", shares=[SHARES[0], self.write("bad.env", e)])

    def test_corrupt_share_named_with_more(self):
        e = self.read(2)
        e[-5] ^= 0x40
        self.refused("share", "bad.env: share 3 does not agree with the others",
                     shares=[SHARES[0], SHARES[1], self.write("bad.env", e)])

    def test_share_of_another_ceremony(self):
        e = self.read(0)
        e[10:18] = b"pyforged"
        self.refused("share", "a foreign share", shares=[self.write("foreign.env", e), SHARES[1]])

    # Envelope offsets for the ceremony id "pyverify": plan_hash 25..57, commitment 57..89.
    def test_share_of_another_plan(self):
        e = self.read(1)
        e[30] ^= 1
        self.refused("share", "bad.env: plan_hash", "the folder says 4ec01d69",
                     shares=[SHARES[0], self.write("bad.env", e)])

    def test_share_with_another_commitment_named(self):
        e = self.read(2)
        e[60] ^= 1
        self.refused("share", "odd.env: commitment differs from the other shares",
                     shares=[SHARES[0], SHARES[1], self.write("odd.env", e)])

    def test_truncated_share(self):
        self.refused("share", "truncated in share",
                     shares=[self.write("cut.env", self.read(0)[:-3]), SHARES[1]])

    def test_trailing_bytes(self):
        self.refused("share", "1 trailing byte(s)",
                     shares=[self.write("long.env", self.read(0) + b"\0"), SHARES[1]])


if __name__ == "__main__":
    unittest.main()


def field(value):
    """A transcript field value in its one spelling (transcript.md): bare, or quoted."""
    if sv.is_bare(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Recovery(unittest.TestCase):
    """Recovery folders (docs/formats/recovery.md) of the fixture's generation ceremony, made
    here as a recovery ceremony writes them, by a holder of the root key (recombined from the
    fixture's shares): each passes, and with SHERD_VERIFY set sherd-verify --recovery prints the
    same; each tampered copy is refused, by sherd-verify too. (The Rust test
    ceremony/tests/python_verifier.rs runs both verifiers on recoveries sherd itself made.)"""

    T = 1795510800 + 25 * 3600  # the request time, 2026-11-25T10:00:00Z
    FILES = [("release.txt", b"release 1.2\n"), ("notes (draft).txt", b"notes\n")]
    CHALLENGE = "Bitcoin block 880000: 0000abc \"quoted\""
    UID = "Builder One <b1@example.org>"
    EXPIRY = 1835481600  # 2028-03-01T00:00:00Z

    @classmethod
    def setUpClass(cls):
        secret, env = root_secret()
        cls.seed = sv.hkdf32(secret, b"sherd/v1/root/primary/ed25519")
        cls.root_body = sv.derive_root(secret, env["key_time"])[0].body
        cls.gen = sv.verify_folder(FOLDER)
        with open(os.path.join(REQUESTS, "certify-one-user-id.toml"), encoding="utf-8") as f:
            text = f.read()
        cls.builder = text[text.index("-----BEGIN"):text.index("-----END")] + \
            "-----END PGP PUBLIC KEY BLOCK-----\n"

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = os.path.join(tmp.name, "recovery")
        self.stick = os.path.join(tmp.name, "stick")
        os.makedirs(self.stick)
        for name, data in self.FILES:
            with open(os.path.join(self.stick, name), "wb") as f:
                f.write(data)

    def write(self, rel, data):
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def signature(self, data, created=None, sigtype=0x00, seed=None, key_body=None):
        return armor(packet(2, sig_body(sigtype, data, seed or self.seed,
                                        key_body or self.root_body,
                                        self.T if created is None else created)))

    def build(self, op, edit=None, sig=None, certify=True, cert_expiry=None):
        """Writes the recovery folder of a request `op`; `edit(records)` changes the records
        before they are chained and signed; `sig(data)` makes the operation's signatures;
        `certify`: whether the root key certifies the user ID, with a signature expiring at
        `cert_expiry` (default: the request's expiry)."""
        g, sig = self.gen, sig or self.signature
        fpr = g["root_fingerprint"]
        request = (f'format = "sherd-request/1"\nceremony_id = "pyverify"\n'
                   f'root_fingerprint = "{fpr}"\ntime = 2026-11-25T10:00:00Z\n\n')
        ops, paths = [], []
        if op == "sign":
            request += "[sign]\n" + "".join(f'[[sign.file]]\nname = "{name}"\nsha256 = '
                                            f'"{sha(data)}"\n' for name, data in self.FILES)
            for i, (name, data) in enumerate(self.FILES):
                path = sv.signature_path(i + 1, name)
                self.write(path, sig(data))
                ops.append(["recovery.signed", f"name={field(name)} sha256={sha(data)} "
                            f"size={len(data)} signature={path}"])
                paths.append(path)
        elif op == "prove-quorum":
            request += f'[prove-quorum]\nchallenge = "{self.CHALLENGE.replace(chr(34), chr(92) + chr(34))}"\n'
            data = self.CHALLENGE.encode()
            self.write("quorum/challenge.txt", data)
            self.write("quorum/challenge.txt.sig", sig(data))
            ops.append(["recovery.quorum", f"challenge-sha256={sha(data)} "
                        "signature=quorum/challenge.txt.sig"])
            paths += ["quorum/challenge.txt", "quorum/challenge.txt.sig"]
        else:
            request += (f"[certify]\ncert = '''\n{self.builder}'''\nuser_ids = [\"{self.UID}\"]\n"
                        "expiry = 2028-03-01T00:00:00Z\n")
            cert = sv.parse_armored_cert(self.builder)
            out, uid = b"", None
            for tag, body in sv.packets(sv.dearmor(self.builder, "PGP PUBLIC KEY BLOCK")):
                out += packet(tag, body)
                uid = body if tag == 13 else uid
                if tag == 2 and certify and uid == self.UID.encode():
                    # The root key's certification, after the user ID's self-signature.
                    certify = False
                    expiry = self.EXPIRY if cert_expiry is None else cert_expiry
                    out += packet(2, sig_body(
                        0x10, cert.primary.hash_material() + sv.uid_material(uid),
                        self.seed, self.root_body, self.T,
                        subpacket(3, struct.pack(">I", expiry - self.T))))
            self.write("certified/cert.asc", armor(out, "PGP PUBLIC KEY BLOCK"))
            ops.append(["recovery.certified", f"cert={cert.fingerprint} "
                        f"user-id={field(self.UID)} expiry={self.EXPIRY}"])
            paths.append("certified/cert.asc")
        self.write("request.toml", request.encode())
        with open(os.path.join(FOLDER, "root-cert.asc"), "rb") as f:
            self.write("root-cert.asc", f.read())
        shares = []
        for index, reader in [(2, 3), (1, 1)]:  # holder 2 by their backup, holder 3
            h, r = g["plan"].holders[index - 1], g["plan"].holders[reader - 1]
            shares.append(["recovery.share", " ".join([
                f"holder={index}", f"name={field(h['name'])}",
                f"envelope={g['shards'].shares[index - 1]['message_sha256']}",
                f"pins={sha(g['files'][f'pins/holder-{index:03d}.asc'])}",
                f"reader={'holder' if index == reader else 'backup'}",
                f"reader-name={field(r['name'])}",
                f"personal={r['certs'][0].cert.subkeys[-1][0].fingerprint}",
                f"personal-card=0006:{reader:08d}", f"card=000F:0001{index:04d}"])])
        records = [
            ["recovery.generation", f"ceremony=pyverify transcript={g['final_hash']} root={fpr}"],
            ["recovery.request", f"hash={sv.Request(request).hash} file-sha256="
             f"{sha(request.encode())} operation={op} time={self.T}"],
            ["witness.confirm", 'name="the witnesses present" step=request-hash'],
            ["recovery.policy", "policy=none needed=0 approvals=0"],
            *shares,
            ["recovery.recombined", f"holders=2,1 threshold=2 commitment=ok root={fpr} "
             "self-test=ok"],
            *ops,
        ]
        for path in ["request.toml", "root-cert.asc", *paths]:
            with open(os.path.join(self.dir, path), "rb") as f:
                data = f.read()
            records.append(["output.file", f"path={path} size={len(data)} sha256={sha(data)}"])
        records.append(["ceremony.end", f"files={len(paths) + 2}"])
        if edit:
            edit(records)
        self.sign_records(records)

    def sign_records(self, records, created=None):
        lines, prev = ["sherd-transcript/3"], hashlib.sha256(b"sherd-transcript/3").digest()
        for i, (kind, value) in enumerate(records):
            lines.append(f"{i + 1} {prev.hex()} {kind} {value}")
            prev = hashlib.sha256(lines[-1].encode()).digest()
        data = ("\n".join(lines) + "\n").encode()
        self.write("transcript.txt", data)
        self.write("transcript.txt.sig", self.signature(data, created))

    def verdict(self, *extra):
        """This verifier's status and output, and sherd-verify's (None without SHERD_VERIFY)."""
        args = ["--recovery", self.dir, "--generation", FOLDER, *extra]
        ours = run(*args)
        rust = os.environ.get("SHERD_VERIFY")
        if not rust:
            return ours, None
        p = subprocess.run([rust, *args], capture_output=True, text=True)
        if os.environ.get("SHERD_VERIFY_SHOW"):
            print(f"\n  ours: {ours[1].strip()}\n  sherd-verify: {p.stdout.strip()}",
                  file=sys.stderr)
        return ours, (p.returncode, p.stdout)

    def passes(self, *extra):
        (status, out), rust = self.verdict(*extra)
        self.assertEqual(status, 0, out)
        if rust:
            self.assertEqual(rust, (0, out))
        return out

    def refused(self, code, *needles, files=None):
        with self.assertRaises(sv.Failure) as cm:
            sv.verify_recovery(self.dir, FOLDER, files)
        msg = str(cm.exception)
        self.assertEqual(cm.exception.code, code, msg)
        for n in needles:
            self.assertIn(n, msg)
        (status, out), rust = self.verdict(*(["--files", files] if files else []))
        self.assertEqual((status, out), (1, f"FAIL {self.dir}: {msg}\n"))
        if rust:
            self.assertEqual(rust[0], 1, rust[1])
        return msg

    def test_sign(self):
        self.build("sign")
        out = self.passes()
        self.assertIn("operation:         sign\n", out)
        self.assertIn("holders used:      2 of threshold 2: 2 (Holder 002), 1 (Holder 001)\n", out)
        self.assertIn('signatures:        signatures/release.txt.sig: by the root key, for '
                      '"release.txt"', out)
        self.assertIn('                   signatures/by-position/002.sig: by the root key, for '
                      '"notes (draft).txt"', out)
        out = self.passes("--files", self.stick)
        self.assertIn('signatures/by-position/002.sig: a good signature by the root key over '
                      '"notes (draft).txt"', out)

    def test_alone_or_as_the_generation_folder(self):
        """Given alone, a recovery folder is refused, saying what to give; given as the
        generation folder, too."""
        self.build("prove-quorum")
        status, out = run(self.dir)
        self.assertEqual((status, out), (1, f"FAIL {self.dir}: a recovery folder (its "
                         "transcript's record 1 is recovery.generation): verify it against the "
                         "generation folder it used, with sherd-verify --recovery "
                         f"{self.dir} --generation <generation-folder>\n"))
        status, out = run("--recovery", FOLDER, "--generation", self.dir)
        self.assertEqual((status, out), (1, f"FAIL {FOLDER}: the generation folder's "
                         "transcript.txt is a recovery transcript (record 1 is "
                         "recovery.generation): give the generation ceremony's output folder "
                         "as the generation folder\n"))

    def test_replaced_folders(self):
        """--replaced takes replace-card folders only, in order, and a recovery's
        recovery.replaced records must be the folders given. (Replace-card folders themselves
        are made by sherd on the host and checked by both verifiers in
        ceremony/tests/replace_card.rs.)"""
        self.build("prove-quorum")
        status, out = run("--recovery", self.dir, "--generation", FOLDER, "--replaced")
        self.assertEqual((status, out), (2, ""))
        # A folder of another operation given as a replace-card folder: it verifies against
        # the pinned root, but replaces nothing.
        (status, out), rust = self.verdict("--replaced", self.dir)
        self.assertEqual((status, out), (1, f"FAIL {self.dir}: {self.dir} is a prove-quorum "
                         "recovery's folder, neither a replace-card nor a reshare one: give only "
                         "replace-card and reshare folders with the generation folder\n"))
        if rust:
            self.assertEqual(rust, (status, out))
        # A recovery.replaced record, but no folder given.
        fpr = self.gen["shards"].shares[1]["location_cert"].fingerprint

        def replaced(records):
            records.insert(1, ["recovery.replaced", f"holder=2 transcript={'ab' * 32} "
                               f"location={fpr} envelope={'cd' * 32} pins={'ef' * 32}"])
        self.build("prove-quorum", edit=replaced)
        self.refused("replaced", "transcript.txt: 1 recovery.replaced/recovery.reshared "
                     "record(s), but the root was pinned with 0 replace-card/reshare folder(s)")

    def test_records_of_replace_card_in_another_operation(self):
        fpr = self.gen["shards"].shares[1]["location_cert"].fingerprint

        def card(records):
            at = next(i for i, r in enumerate(records) if r[0] == "output.file")
            records.insert(at, ["recovery.card", "holder=2 card=1 serial=000F:00990001 "
                                f"location={fpr} test-decrypt=ok"])
        self.build("sign", edit=card)
        self.refused("operation", "(recovery.card): the request's operation is sign")

    def test_records_of_reshare_in_another_operation(self):
        fpr = self.gen["shards"].shares[1]["location_cert"].fingerprint

        def card(records):
            at = next(i for i, r in enumerate(records) if r[0] == "output.file")
            records.insert(at, ["recovery.new-card", "holder=2 card=1 serial=000F:00990001 "
                                f"location={fpr} test-decrypt=ok"])
        self.build("sign", edit=card)
        self.refused("operation", "(recovery.new-card): the request's operation is sign")

    def test_a_reshared_record_but_no_folder_given(self):
        def reshared(records):
            records.insert(1, ["recovery.reshared", f"transcript={'ab' * 32} plan={'cd' * 32} "
                               "threshold=3 holders=4"])
        self.build("prove-quorum", edit=reshared)
        self.refused("replaced", "transcript.txt: 1 recovery.replaced/recovery.reshared "
                     "record(s), but the root was pinned with 0 replace-card/reshare folder(s)")

    def test_prove_quorum(self):
        self.build("prove-quorum")
        out = self.passes()
        self.assertIn('quorum/challenge.txt.sig: a good signature by the root key over the '
                      'challenge "Bitcoin block 880000: 0000abc \\"quoted\\""', out)

    def test_certify(self):
        self.build("certify")
        out = self.passes()
        self.assertIn('certified/cert.asc: "Builder One <b1@example.org>" certified by the root '
                      'key', out)

    def test_request_changed(self):
        self.build("prove-quorum")
        with open(os.path.join(self.dir, "request.toml"), "ab") as f:
            f.write(b"# a comment\n")
        self.refused("mismatch", "transcript.txt record 2 (recovery.request): its file-sha256 is ")

    def test_transcript_edited(self):
        self.build("prove-quorum")
        with open(os.path.join(self.dir, "transcript.txt"), "rb") as f:
            t = f.read()
        self.write("transcript.txt", t.replace(b"holder=2", b"holder=3", 1))
        self.refused("transcript", "transcript.txt: line ", "the chain is broken")

    def test_extra_file(self):
        self.build("sign")
        self.write("signatures/extra.sig", b"x")
        self.refused("extra-file", "signatures/extra.sig: in the folder, but no output.file "
                     "record of transcript.txt lists it")

    def test_output_altered(self):
        self.build("certify")
        with open(os.path.join(self.dir, "certified/cert.asc"), "ab") as f:
            f.write(b"\n")
        self.refused("mismatch", "certified/cert.asc: ", "bytes, the record says ")

    def test_another_file_given(self):
        self.build("sign")
        with open(os.path.join(self.stick, "release.txt"), "wb") as f:
            f.write(b"release 1.3\n")
        self.refused("operation", "release.txt (the file given): SHA-256 ", files=self.stick)

    def test_share_not_the_generations(self):
        def edit(records):
            records[4][1] = records[4][1].replace(
                self.gen["shards"].shares[1]["message_sha256"], "ab" * 32)
        self.build("sign", edit)
        self.refused("mismatch", "transcript.txt record 5 (recovery.share, holder 2): envelope "
                     f"{'ab' * 32}, but the generation transcript's share.sealed")

    def test_too_few_shares(self):
        def edit(records):
            del records[5]
            records[5][1] = records[5][1].replace("holders=2,1", "holders=2")
        self.build("sign", edit)
        self.refused("missing-record", "1 recovery.share record(s), the generation plan's "
                     "threshold is 2")

    def test_uncertified(self):
        self.build("certify", certify=False)
        self.refused("operation", 'certified/cert.asc: no good certification of the user ID '
                     '"Builder One <b1@example.org>" by the root key')

    def test_signature_as_text(self):
        self.build("sign", sig=lambda data: self.signature(data, sigtype=0x01))
        self.refused("operation", "signatures/release.txt.sig: a signature of type Text, not a "
                     "binary document signature")

    def test_signature_by_another_key(self):
        seed = b"\x55" * 32
        body = ed_key(seed, self.T)
        self.build("sign", sig=lambda data: self.signature(data, seed=seed, key_body=body))
        self.refused("operation", f"signatures/release.txt.sig: made by key "
                     f"{sv.Key(body).fingerprint}, not by the root key "
                     f"{self.gen['root_fingerprint']}")

    def test_not_at_the_request_time(self):
        """recovery.md dates every signature at the request time (sherd-verify checks it too)."""
        self.build("prove-quorum", sig=lambda data: self.signature(data, created=self.T - 1))
        self.refused("mismatch", "quorum/challenge.txt.sig: made at 2026-11-25T09:59:59Z, not "
                     "at the request time 2026-11-25T10:00:00Z")

    def test_transcript_signature_not_at_the_request_time(self):
        """The recovery transcript's own signature is dated the request time too (sherd-verify
        checks it too)."""
        self.build("prove-quorum")
        with open(os.path.join(self.dir, "transcript.txt"), "rb") as f:
            data = f.read()
        self.write("transcript.txt.sig", self.signature(data, self.T + 1))
        self.refused("mismatch", "transcript.txt.sig: made at 2026-11-25T10:00:01Z, not at the "
                     "request time 2026-11-25T10:00:00Z")

    def test_certification_not_expiring_at_the_requests_expiry(self):
        """A certification expires at the request's expiry (sherd-verify checks it too)."""
        self.build("certify", cert_expiry=self.EXPIRY + 86400)
        self.refused("mismatch", 'certified/cert.asc (the certification of "Builder One '
                     '<b1@example.org>"): made at 2026-11-25T10:00:00Z, expiring '
                     "2028-03-02T00:00:00Z, not at the request time 2026-11-25T10:00:00Z "
                     "expiring at the request's expiry 2028-03-01T00:00:00Z")


class ReshareRecords(unittest.TestCase):
    """The reshare recovery's records (recovery.md, "reshare", "Its records") and
    recovery.reshared, read with exactly their fields and places. (Reshare folders themselves
    are made by sherd on the host and checked by both verifiers in ceremony/tests/reshare.rs.)"""

    FPR = "AB" * 20

    def parse(self, kind, value):
        return sv.parse_core(kind, value, sv.RECOVERY_FIELDS[kind])

    def test_each_kind_reads(self):
        h = "cd" * 32
        self.assertEqual(self.parse("recovery.reshare", f"plan={h} threshold=3 holders=4 "
                                    "witnesses=2"),
                         {"plan": h, "threshold": 3, "holders": 4, "witnesses": 2})
        self.assertEqual(self.parse("recovery.new-location", f'holder=1 name="Ann Lee" '
                                    f"fingerprint={self.FPR} subkey={self.FPR}")["name"],
                         "Ann Lee")
        self.assertEqual(self.parse("recovery.new-sealed", f"holder=2 sha256={h}")["holder"], 2)
        self.assertEqual(self.parse("recovery.new-subsets", "checked=4 total=4 policy=all "
                                    "second=shamir-gf256 combinations=8"),
                         {"checked": 4, "total": 4, "policy": "all", "second": "shamir-gf256",
                          "combinations": 8})
        self.assertEqual(self.parse("recovery.new-subsets", "checked=1255 total=over-2^128 "
                                    "policy=cyclic-windows+random second=x combinations=1255")
                         ["total"], "over-2^128")
        self.assertEqual(self.parse("recovery.old-shares", f"plan={h} threshold=2 holders=3")
                         ["holders"], 3)
        self.assertEqual(self.parse("recovery.new-card", "holder=4 card=1 serial=000F:CC040001 "
                                    f"location={self.FPR} test-decrypt=ok")["serial"],
                         "000F:CC040001")
        self.assertEqual(self.parse("recovery.new-pins", f"holder=1 sha256={h} "
                                    f"recipients={self.FPR},{self.FPR}")["recipients"],
                         [self.FPR, self.FPR])
        self.assertEqual(self.parse("recovery.reshared", f"transcript={h} plan={h} "
                                    "threshold=3 holders=4")["threshold"], 3)

    def test_fields_are_checked(self):
        for kind, value in [
            ("recovery.reshare", f"plan={'cd' * 32} threshold=3 holders=4"),
            ("recovery.reshare", f"plan={'CD' * 32} threshold=3 holders=4 witnesses=1"),
            ("recovery.new-subsets", "checked=4 total=4 policy=some second=x combinations=4"),
            ("recovery.new-card", f"holder=1 card=1 serial=S location={self.FPR} "
                                  "test-decrypt=no"),
            ("recovery.old-shares", f"threshold=2 plan={'cd' * 32} holders=3"),
            ("recovery.reshared", f"transcript={'ab' * 32} plan={'cd' * 32} threshold=300 "
                                  "holders=4"),
        ]:
            with self.assertRaises(sv.FieldError, msg=f"{kind} {value}"):
                self.parse(kind, value)

    def test_places(self):
        """Right after record 1 with recovery.replaced; the reshare's own records after
        recovery.recombined, in the table's order, before the outputs."""
        place = sv.RECOVERY_PLACE
        self.assertEqual(place["recovery.reshared"], place["recovery.replaced"])
        order = ["recovery.recombined", *sv.RESHARE_KINDS, "output.file", "ceremony.end"]
        self.assertEqual([place[k] for k in order], sorted(place[k] for k in order))
        self.assertEqual(len({place[k] for k in order}), len(order))
