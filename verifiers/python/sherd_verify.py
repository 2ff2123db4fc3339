#!/usr/bin/env python3
"""An independent verifier for a sherd generation ceremony's output folder, and for a recovery
ceremony's folder against the generation folder it used.

    python3 sherd_verify.py <ceremony folder> [--shares FILE ...]
    python3 sherd_verify.py --recovery <recovery folder> --generation <generation folder>
                            [--files <folder with the files a sign request names>]

It implements sherd's format documents (docs/formats/*.md) and shares no code with sherd, so
that an auditor can check a ceremony without trusting sherd's Rust; its messages copy the
wording of sherd-verify's, so that the two can be compared line by line. It needs Python 3.11
or later (tomllib) and the `cryptography` package (Debian: python3-cryptography), nothing
else: it parses the OpenPGP packets it needs itself (RFC 4880 / RFC 9580).

It prints `PASS <folder>` and the values to compare with the witnesses' notes, or
`FAIL <folder>: <the first failed check>`, in the wording of sherd's own `sherd-verify`.
Exit status 0 on PASS, 1 on FAIL, 2 on a usage error.

With `--shares`, each FILE is a decrypted share envelope (the plaintext of
docs/formats/share-envelope.md, as a recovery obtains it from a location card); the shares are
recombined by Lagrange interpolation over GF(2^8) (polynomial 0x11b), and the result checked
against the envelopes' commitment and the root certificate's fingerprint (docs/formats/keys.md).

Sections:
  1. Failures (the named reasons a folder is refused)
  2. PGP word list
  3. OpenPGP: armor, packets, keys, signatures, certificates
  4. The transcript (hash chain, fields, core records)
  5. The plan (canonical hash)
  6. The shard file
  7. The folder checks, in sherd-verify's order (the TPM quote and the boot verdicts last)
  8. Shares: envelopes, GF(2^8), recombination, root key derivation
  9. Recovery folders: the request and its canonical hash, checks 1-7 of recovery.md
 10. Command line
"""

import base64
import datetime
import hashlib
import hmac
import itertools
import math
import os
import re
import stat
import struct
import sys
import tomllib
import unicodedata

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


# =============================================================================================
# 1. Failures
# =============================================================================================


class Failure(Exception):
    """The first failed check. `code` names the kind of failure (for tests and scripts);
    str() is the message, worded like sherd-verify's."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def unreadable(path, why):
    return Failure("unreadable", f"{path}: cannot read: {why}")


def transcript_error(path, why):
    return Failure("transcript", f"{path}: {why}")


def invalid(path, reason):
    return Failure("invalid", f"{path}: {reason}")


def mismatch(what, expected_from, expected, found):
    return Failure("mismatch", f"{what}: {expected_from} says {expected}, found {found}")


def missing_record(why):
    return Failure("missing-record", f"transcript.txt: {why}")


def bad_record(seq, kind, reason):
    return Failure("bad-record", f"transcript.txt record {seq} ({kind}): {reason}")


def rec_name(seq, kind):
    return f"transcript.txt record {seq} ({kind})"


# =============================================================================================
# 2. PGP word list (Juola and Zimmermann, 1995): byte value -> word; even positions use the
#    two-syllable list, odd positions the three-syllable list.
# =============================================================================================

EVEN_WORDS = (
    "aardvark absurd accrue acme adrift adult afflict ahead aimless Algol allow alone ammo "
    "ancient apple artist assume Athens atlas Aztec baboon backfield backward banjo "
    "beaming bedlamp beehive beeswax befriend Belfast berserk billiard bison blackjack "
    "blockade blowtorch bluebird bombast bookshelf brackish breadline breakup brickyard "
    "briefcase Burbank button buzzard cement chairlift chatter checkup chisel choking "
    "chopper Christmas clamshell classic classroom cleanup clockwork cobra commence "
    "concert cowbell crackdown cranky crowfoot crucial crumpled crusade cubic dashboard "
    "deadbolt deckhand dogsled dragnet drainage dreadful drifter dropper drumbeat drunken "
    "Dupont dwelling eating edict egghead eightball endorse endow enlist erase escape "
    "exceed eyeglass eyetooth facial fallout flagpole flatfoot flytrap fracture framework "
    "freedom frighten gazelle Geiger glitter glucose goggles goldfish gremlin guidance "
    "hamlet highchair hockey indoors indulge inverse involve island jawbone keyboard "
    "kickoff kiwi klaxon locale lockup merit minnow miser Mohawk mural music necklace "
    "Neptune newborn nightbird Oakland obtuse offload optic orca payday peachy pheasant "
    "physique playhouse Pluto preclude prefer preshrunk printer prowler pupil puppy python "
    "quadrant quiver quota ragtime ratchet rebirth reform regain reindeer rematch repay "
    "retouch revenge reward rhythm ribcage ringbolt robust rocker ruffled sailboat sawdust "
    "scallion scenic scorecard Scotland seabird select sentence shadow shamrock showgirl "
    "skullcap skydive slingshot slowdown snapline snapshot snowcap snowslide solo "
    "southward soybean spaniel spearhead spellbind spheroid spigot spindle spyglass "
    "stagehand stagnate stairway standard stapler steamship sterling stockman stopwatch "
    "stormy sugar surmount suspense sweatband swelter tactics talon tapeworm tempest tiger "
    "tissue tonic topmost tracker transit trauma treadmill Trojan trouble tumor tunnel "
    "tycoon uncut unearth unwind uproot upset upshot vapor village virus Vulcan waffle "
    "wallet watchword wayside willow woodlark Zulu"
).split()
ODD_WORDS = (
    "adroitness adviser aftermath aggregate alkali almighty amulet amusement antenna "
    "applicant Apollo armistice article asteroid Atlantic atmosphere autopsy Babylon "
    "backwater barbecue belowground bifocals bodyguard bookseller borderline bottomless "
    "Bradbury bravado Brazilian breakaway Burlington businessman butterfat Camelot "
    "candidate cannonball Capricorn caravan caretaker celebrate cellulose certify "
    "chambermaid Cherokee Chicago clergyman coherence combustion commando company "
    "component concurrent confidence conformist congregate consensus consulting corporate "
    "corrosion councilman crossover crucifix cumbersome customer Dakota decadence December "
    "decimal designing detector detergent determine dictator dinosaur direction disable "
    "disbelief disruptive distortion document embezzle enchanting enrollment enterprise "
    "equation equipment escapade Eskimo everyday examine existence exodus fascinate "
    "filament finicky forever fortitude frequency gadgetry Galveston getaway glossary "
    "gossamer graduate gravity guitarist hamburger Hamilton handiwork hazardous headwaters "
    "hemisphere hesitate hideaway holiness hurricane hydraulic impartial impetus inception "
    "indigo inertia infancy inferno informant insincere insurgent integrate intention "
    "inventive Istanbul Jamaica Jupiter leprosy letterhead liberty maritime matchmaker "
    "maverick Medusa megaton microscope microwave midsummer millionaire miracle misnomer "
    "molasses molecule Montana monument mosquito narrative nebula newsletter Norwegian "
    "October Ohio onlooker opulent Orlando outfielder Pacific pandemic Pandora paperweight "
    "paragon paragraph paramount passenger pedigree Pegasus penetrate perceptive "
    "performance pharmacy phonetic photograph pioneer pocketful politeness positive potato "
    "processor provincial proximate puberty publisher pyramid quantity racketeer rebellion "
    "recipe recover repellent replica reproduce resistor responsive retraction retrieval "
    "retrospect revenue revival revolver sandalwood sardonic Saturday savagery scavenger "
    "sensation sociable souvenir specialist speculate stethoscope stupendous supportive "
    "surrender suspicious sympathy tambourine telephone therapist tobacco tolerance "
    "tomorrow torpedo tradition travesty trombonist truncated typewriter ultimate "
    "undaunted underfoot unicorn unify universe unravel upcoming vacancy vagabond vertigo "
    "Virginia visitor vocalist voyager warranty Waterloo whimsical Wichita Wilmington "
    "Wyoming yesteryear Yucatan"
).split()
assert len(EVEN_WORDS) == 256 and len(ODD_WORDS) == 256


def pgp_words(data):
    return " ".join((EVEN_WORDS if i % 2 == 0 else ODD_WORDS)[b] for i, b in enumerate(data))


# =============================================================================================
# 3. OpenPGP (RFC 4880, RFC 9580): only what a sherd folder needs.
# =============================================================================================


class PgpError(Exception):
    pass


def crc24(data):
    crc = 0xB704CE
    for b in data:
        crc ^= b << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def dearmor(text, kind):
    """The binary bytes of one ASCII-armored block of `kind` (e.g. "PGP SIGNATURE"); checks
    the CRC-24 when present. Anything outside the block is ignored."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise PgpError("armor is not ASCII")
    lines = [line.rstrip("\r\n \t") for line in text.splitlines()]
    begin, end = f"-----BEGIN {kind}-----", f"-----END {kind}-----"
    if begin not in lines:
        raise PgpError(f"no {begin} line")
    i = lines.index(begin) + 1
    while i < len(lines) and lines[i] != "":  # armor headers (Comment: ...), then a blank line
        if ": " not in lines[i]:
            break
        i += 1
    if i < len(lines) and lines[i] == "":
        i += 1
    body, checksum = [], None
    while True:
        if i >= len(lines):
            raise PgpError(f"no {end} line (truncated?)")
        line = lines[i]
        if line == end:
            break
        if line.startswith("=") and len(line) == 5:
            checksum = line[1:]
        else:
            body.append(line)
        i += 1
    try:
        data = base64.b64decode("".join(body), validate=True)
    except ValueError as e:
        raise PgpError(f"bad base64 in armor: {e}")
    if checksum is not None:
        try:
            want = int.from_bytes(base64.b64decode(checksum, validate=True), "big")
        except ValueError:
            raise PgpError("bad armor checksum line")
        if crc24(data) != want:
            raise PgpError("armor checksum (CRC-24) does not match")
    if not data:
        raise PgpError("empty armored block")
    return data


# Packet tags (RFC 4880 section 4.3).
TAG_PKESK, TAG_SIG, TAG_SECKEY, TAG_PUBKEY, TAG_SECSUB = 1, 2, 5, 6, 7
TAG_TRUST, TAG_UID, TAG_PUBSUB, TAG_UATTR, TAG_SEIPD = 12, 13, 14, 17, 18


def packets(data):
    """Splits binary OpenPGP data into (tag, body) pairs; handles both header formats and
    partial body lengths (RFC 4880 section 4.2)."""
    out, pos = [], 0
    while pos < len(data):
        ctb = data[pos]
        pos += 1
        if not ctb & 0x80:
            raise PgpError(f"not an OpenPGP packet header at byte {pos - 1}")
        if ctb & 0x40:  # new format
            tag = ctb & 0x3F
            body = b""
            while True:
                if pos >= len(data):
                    raise PgpError("truncated packet header")
                o = data[pos]
                if o < 192:
                    n, pos, partial = o, pos + 1, False
                elif o < 224:
                    if pos + 1 >= len(data):
                        raise PgpError("truncated packet header")
                    n, pos, partial = ((o - 192) << 8) + data[pos + 1] + 192, pos + 2, False
                elif o == 255:
                    if pos + 5 > len(data):
                        raise PgpError("truncated packet header")
                    n = struct.unpack(">I", data[pos + 1 : pos + 5])[0]
                    pos, partial = pos + 5, False
                else:
                    n, pos, partial = 1 << (o & 0x1F), pos + 1, True
                if pos + n > len(data):
                    raise PgpError(f"packet (tag {tag}) is truncated")
                body += data[pos : pos + n]
                pos += n
                if not partial:
                    break
        else:  # old format
            tag, ltype = (ctb >> 2) & 0x0F, ctb & 0x03
            if ltype == 3:
                n = len(data) - pos
            else:
                size = (1, 2, 4)[ltype]
                if pos + size > len(data):
                    raise PgpError("truncated packet header")
                n = int.from_bytes(data[pos : pos + size], "big")
                pos += size
            if pos + n > len(data):
                raise PgpError(f"packet (tag {tag}) is truncated")
            body = data[pos : pos + n]
            pos += n
        out.append((tag, body))
    return out


def read_mpi(buf, pos):
    if pos + 2 > len(buf):
        raise PgpError("truncated MPI")
    bits = struct.unpack(">H", buf[pos : pos + 2])[0]
    n = (bits + 7) // 8
    if pos + 2 + n > len(buf):
        raise PgpError("truncated MPI")
    return buf[pos + 2 : pos + 2 + n], pos + 2 + n


OID_ED25519 = bytes.fromhex("2B06010401DA470F01")
OID_CV25519 = bytes.fromhex("2B060104019755010501")
OID_NIST = {
    bytes.fromhex("2A8648CE3D030107"): ec.SECP256R1(),
    bytes.fromhex("2B81040022"): ec.SECP384R1(),
    bytes.fromhex("2B81040023"): ec.SECP521R1(),
}
ALGO_RSA, ALGO_RSA_S, ALGO_ECDH, ALGO_ECDSA, ALGO_EDDSA = 1, 3, 18, 19, 22
ALGO_X25519, ALGO_ED25519 = 25, 27


class Key:
    """A v4 public key or subkey packet: its body (what the fingerprint covers) and the parts
    this verifier uses."""

    def __init__(self, body):
        if len(body) < 6 or body[0] != 4:
            raise PgpError(f"key packet version {body[0] if body else '?'}: only v4 is read")
        self.body = body
        self.created = struct.unpack(">I", body[1:5])[0]
        self.algo = body[5]
        self.fingerprint = hashlib.sha1(
            b"\x99" + struct.pack(">H", len(body)) + body
        ).hexdigest().upper()
        self.keyid = self.fingerprint[-16:]
        self.curve = None  # "ed25519", "cv25519", "nist", or None
        self.verifier = None  # a cryptography public key able to verify, if supported
        rest = body[6:]
        if self.algo in (ALGO_EDDSA, ALGO_ECDH, ALGO_ECDSA):
            n = rest[0]
            oid, pos = rest[1 : 1 + n], 1 + n
            point, pos = read_mpi(rest, pos)
            if self.algo == ALGO_EDDSA and oid == OID_ED25519:
                if len(point) != 33 or point[0] != 0x40:
                    raise PgpError("Ed25519 point is not 0x40 || 32 bytes")
                self.curve = "ed25519"
                self.verifier = Ed25519PublicKey.from_public_bytes(point[1:])
            elif self.algo == ALGO_ECDH and oid == OID_CV25519:
                if len(point) != 33 or point[0] != 0x40:
                    raise PgpError("Cv25519 point is not 0x40 || 32 bytes")
                self.curve = "cv25519"
                kdf = rest[pos : pos + 4]
                if len(kdf) != 4 or kdf[0] != 3 or kdf[1] != 1:
                    raise PgpError("ECDH KDF parameters malformed")
                self.kdf = (kdf[2], kdf[3])
            elif self.algo == ALGO_ECDSA and oid in OID_NIST:
                self.curve = "nist"
                self.verifier = ec.EllipticCurvePublicKey.from_encoded_point(OID_NIST[oid], point)
        elif self.algo == ALGO_ED25519:
            self.curve = "ed25519"
            self.verifier = Ed25519PublicKey.from_public_bytes(rest[:32])
        elif self.algo == ALGO_X25519:
            self.curve = "cv25519"
        elif self.algo in (ALGO_RSA, ALGO_RSA_S):
            n, pos = read_mpi(rest, 0)
            e, _ = read_mpi(rest, pos)
            self.verifier = rsa.RSAPublicNumbers(
                int.from_bytes(e, "big"), int.from_bytes(n, "big")
            ).public_key()

    def hash_material(self):
        return b"\x99" + struct.pack(">H", len(self.body)) + self.body


HASHES = {  # hash algorithm id -> (hashlib name, cryptography hash); SHA-1 and MD5 refused
    8: ("sha256", hashes.SHA256()),
    9: ("sha384", hashes.SHA384()),
    10: ("sha512", hashes.SHA512()),
    11: ("sha224", hashes.SHA224()),
    12: ("sha3_256", hashes.SHA3_256()),
    14: ("sha3_512", hashes.SHA3_512()),
}

# Signature subpacket types (RFC 4880 section 5.2.3.1).
SUB_CREATED, SUB_SIG_EXPIRES, SUB_KEY_EXPIRES, SUB_ISSUER = 2, 3, 9, 16
SUB_PRIMARY_UID, SUB_KEY_FLAGS, SUB_EMBEDDED, SUB_ISSUER_FPR = 25, 27, 32, 33
KNOWN_CRITICAL = {2, 3, 4, 5, 7, 9, 11, 16, 20, 21, 22, 23, 25, 27, 30, 31, 32, 33, 34, 35}


def subpackets(area):
    out, pos = [], 0
    while pos < len(area):
        o = area[pos]
        if o < 192:
            n, pos = o, pos + 1
        elif o < 255:
            if pos + 1 >= len(area):
                raise PgpError("truncated subpacket length")
            n, pos = ((o - 192) << 8) + area[pos + 1] + 192, pos + 2
        else:
            n, pos = struct.unpack(">I", area[pos + 1 : pos + 5])[0], pos + 5
        if n == 0 or pos + n > len(area):
            raise PgpError("subpacket overruns its area")
        typ = area[pos]
        out.append((typ & 0x7F, bool(typ & 0x80), area[pos + 1 : pos + n]))
        pos += n
    return out


class Signature:
    """A v4 signature packet."""

    def __init__(self, body):
        if len(body) < 6 or body[0] != 4:
            raise PgpError(
                f"signature packet version {body[0] if body else '?'}: only v4 is read"
            )
        self.body = body
        self.type, self.algo, self.hash_algo = body[1], body[2], body[3]
        hlen = struct.unpack(">H", body[4:6])[0]
        self.hashed_part = body[: 6 + hlen]
        if len(self.hashed_part) != 6 + hlen:
            raise PgpError("signature truncated in its hashed subpackets")
        self.hashed = subpackets(body[6 : 6 + hlen])
        pos = 6 + hlen
        ulen = struct.unpack(">H", body[pos : pos + 2])[0]
        self.unhashed = subpackets(body[pos + 2 : pos + 2 + ulen])
        pos += 2 + ulen
        self.left16 = body[pos : pos + 2]
        pos += 2
        self.mpis = []
        if self.algo == ALGO_ED25519:
            self.mpis = [body[pos : pos + 64]]
            pos += 64
        else:
            while pos < len(body):
                m, pos = read_mpi(body, pos)
                self.mpis.append(m)
        self.unknown_critical = [t for t, c, _ in self.hashed if c and t not in KNOWN_CRITICAL]

    def hashed_sub(self, typ):
        for t, _, v in self.hashed:
            if t == typ:
                return v
        return None

    def sub(self, typ):
        v = self.hashed_sub(typ)
        if v is not None:
            return v
        for t, _, v in self.unhashed:
            if t == typ:
                return v
        return None

    @property
    def created(self):
        v = self.hashed_sub(SUB_CREATED)
        return struct.unpack(">I", v)[0] if v and len(v) == 4 else None

    def expires_at(self):
        v = self.hashed_sub(SUB_SIG_EXPIRES)
        if not v or struct.unpack(">I", v)[0] == 0:
            return None
        return self.created + struct.unpack(">I", v)[0]

    def key_expiry_offset(self):
        v = self.hashed_sub(SUB_KEY_EXPIRES)
        if not v or struct.unpack(">I", v)[0] == 0:
            return None
        return struct.unpack(">I", v)[0]

    def key_flags(self):
        v = self.hashed_sub(SUB_KEY_FLAGS)
        return v[0] if v else None

    def issuers(self):
        """Fingerprints (40 hex) and key IDs (16 hex) this signature names as its issuer."""
        out = set()
        for t, _, v in self.hashed + self.unhashed:
            if t == SUB_ISSUER_FPR and len(v) == 21 and v[0] == 4:
                out.add(v[1:].hex().upper())
                out.add(v[1:].hex().upper()[-16:])
            elif t == SUB_ISSUER and len(v) == 8:
                out.add(v.hex().upper())
        return out

    def check(self, key, data):
        """Whether this signature by `key` verifies over `data` (the bytes hashed before the
        signature's own trailer). Returns None when good, else why not."""
        if self.hash_algo not in HASHES:
            return f"hash algorithm {self.hash_algo} is not accepted (SHA-1/MD5 or unknown)"
        if self.unknown_critical:
            return f"unknown critical subpacket(s) {self.unknown_critical}"
        if self.created is None:
            return "no signature creation time in its hashed area"
        name, chash = HASHES[self.hash_algo]
        trailer = b"\x04\xff" + struct.pack(">I", len(self.hashed_part))
        digest = hashlib.new(name, data + self.hashed_part + trailer).digest()
        if digest[:2] != self.left16:
            return "the digest does not match the signature's 16-bit check value"
        if key.verifier is None:
            return f"key algorithm {key.algo} cannot be verified here"
        try:
            if isinstance(key.verifier, Ed25519PublicKey):
                if self.algo == ALGO_EDDSA and len(self.mpis) == 2:
                    sig = b"".join(m.rjust(32, b"\0") for m in self.mpis)
                elif self.algo == ALGO_ED25519 and len(self.mpis[0]) == 64:
                    sig = self.mpis[0]
                else:
                    return "not an Ed25519 signature"
                key.verifier.verify(sig, digest)  # legacy EdDSA signs the digest
            elif isinstance(key.verifier, rsa.RSAPublicKey):
                if self.algo not in (ALGO_RSA, ALGO_RSA_S) or len(self.mpis) != 1:
                    return "not an RSA signature"
                size = (key.verifier.key_size + 7) // 8
                key.verifier.verify(
                    self.mpis[0].rjust(size, b"\0"), digest, padding.PKCS1v15(),
                    utils.Prehashed(chash),
                )
            elif isinstance(key.verifier, ec.EllipticCurvePublicKey):
                if self.algo != ALGO_ECDSA or len(self.mpis) != 2:
                    return "not an ECDSA signature"
                r, s = (int.from_bytes(m, "big") for m in self.mpis)
                key.verifier.verify(
                    utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(chash))
                )
            else:
                return "unsupported key"
        except InvalidSignature:
            return "bad signature (the key did not make it over these bytes)"
        return None


def uid_material(uid):
    return b"\xb4" + struct.pack(">I", len(uid)) + uid


FLAG_CERTIFY, FLAG_SIGN, FLAG_ENCRYPT_COMMS, FLAG_ENCRYPT_STORAGE = 0x01, 0x02, 0x04, 0x08


class Cert:
    """An OpenPGP certificate (transferable public key): a primary key, user IDs and subkeys,
    each with its signatures."""

    def __init__(self, data):
        pk = packets(data)
        if not pk or pk[0][0] not in (TAG_PUBKEY, TAG_SECKEY):
            raise PgpError("does not start with a public key packet")
        self.has_secret = any(t in (TAG_SECKEY, TAG_SECSUB) for t, _ in pk)
        if self.has_secret:
            raise PgpError("contains secret key material")
        self.primary = Key(pk[0][1])
        self.direct = []  # signatures on the primary key
        self.uids = []  # [uid bytes, [signatures]]
        self.subkeys = []  # [Key, [signatures]]
        current = self.direct
        for tag, body in pk[1:]:
            if tag == TAG_SIG:
                try:
                    current.append(Signature(body))
                except PgpError:
                    continue  # a signature this reader cannot parse (v3, v6) binds nothing here
            elif tag == TAG_UID:
                self.uids.append((body, []))
                current = self.uids[-1][1]
            elif tag == TAG_UATTR:
                current = []  # user attributes: not used
            elif tag == TAG_PUBSUB:
                self.subkeys.append((Key(body), []))
                current = self.subkeys[-1][1]
            elif tag == TAG_TRUST:
                continue
            elif tag in (TAG_PUBKEY, TAG_SECKEY):
                raise PgpError("more than one certificate")
            else:
                raise PgpError(f"unexpected packet (tag {tag}) in a certificate")

    @property
    def fingerprint(self):
        return self.primary.fingerprint

    def _by_primary(self, sig):
        ids = sig.issuers()
        return not ids or self.primary.fingerprint in ids or self.primary.keyid in ids

    def _newest_valid(self, sigs, types, material, t):
        """The newest signature of `types` by the primary key over `material`, made at or
        before t and not expired at t; None if there is none."""
        best = None
        for s in sigs:
            if s.type not in types or not self._by_primary(s):
                continue
            if s.created is None or s.created > t:
                continue
            exp = s.expires_at()
            if exp is not None and exp <= t:
                continue
            if s.check(self.primary, material) is not None:
                continue
            if best is None or s.created > best.created:
                best = s
        return best

    def _revoked(self, sigs, typ, material, t):
        return any(
            s.type == typ and self._by_primary(s) and s.created is not None and s.created <= t
            and s.check(self.primary, material) is None
            for s in sigs
        )

    def primary_binding(self, t):
        """The self-signature that gives the primary key its flags and expiry at t: the
        primary user ID's newest certification, else any user ID's, else the direct-key
        signature. Raises PgpError when the primary key is not valid at t."""
        pm = self.primary.hash_material()
        if self.primary.created > t:
            raise PgpError("the primary key is created after the time it is checked at")
        if self._revoked(self.direct, 0x20, pm, t):
            raise PgpError("the primary key is revoked")
        direct = self._newest_valid(self.direct, (0x1F,), pm, t)
        best, best_primary = None, False
        for uid, sigs in self.uids:
            s = self._newest_valid(sigs, (0x10, 0x11, 0x12, 0x13), pm + uid_material(uid), t)
            if s is None or self._revoked(sigs, 0x30, pm + uid_material(uid), t):
                continue
            is_primary = bool(s.hashed_sub(SUB_PRIMARY_UID) == b"\x01")
            if best is None or (is_primary, s.created) > (best_primary, best.created):
                best, best_primary = s, is_primary
        binding = best or direct
        if binding is None:
            raise PgpError("the primary key has no valid self-signature")
        for s in (binding, direct):
            off = s.key_expiry_offset() if s is not None else None
            if off is not None and self.primary.created + off <= t:
                raise PgpError("the primary key has expired")
        return binding, direct

    def primary_flags(self, t):
        binding, direct = self.primary_binding(t)
        flags = binding.key_flags()
        if flags is None and direct is not None:
            flags = direct.key_flags()
        return flags or 0

    def bound_subkeys(self, t):
        """The subkeys validly bound at t, each with its key flags: a binding signature by the
        primary key (the newest at t), not expired or revoked, and for a signing subkey its
        back-signature (primary key binding, 0x19) by the subkey."""
        out = []
        pm = self.primary.hash_material()
        for key, sigs in self.subkeys:
            material = pm + key.hash_material()
            if key.created > t or self._revoked(sigs, 0x28, material, t):
                continue
            s = self._newest_valid(sigs, (0x18,), material, t)
            if s is None:
                continue
            off = s.key_expiry_offset()
            if off is not None and key.created + off <= t:
                continue
            flags = s.key_flags() or 0
            if flags & FLAG_SIGN:
                back = s.sub(SUB_EMBEDDED)
                try:
                    back = Signature(back) if back else None
                except (PgpError, IndexError, struct.error):
                    back = None
                if back is None or back.type != 0x19 or back.check(key, material) is not None:
                    continue
            out.append((key, flags))
        return out

    def live_keys(self, t, wanted):
        """The keys (primary or subkeys) live and unrevoked at t with a key flag in `wanted`,
        as Sequoia's standard policy selects them (simplified: see the README)."""
        try:
            primary = [self.primary] if self.primary_flags(t) & wanted else []
        except PgpError:
            return []  # the certificate is not valid at t: none of its keys is live
        return primary + [k for k, flags in self.bound_subkeys(t) if flags & wanted]

    def encryption_keys(self, t):
        return [
            k
            for k in self.live_keys(t, FLAG_ENCRYPT_COMMS | FLAG_ENCRYPT_STORAGE)
            # RSA, RSA encrypt-only, ElGamal, ECDH, X25519, X448
            if k.algo in (ALGO_RSA, 2, 16, ALGO_ECDH, ALGO_X25519, 26)
        ]

    def signing_keys(self, t):
        return self.live_keys(t, FLAG_SIGN)

    def all_keys(self):
        """The primary key and every subkey, bound or not (as Sequoia's Cert::keys)."""
        return [self.primary] + [k for k, _ in self.subkeys]

    def valid_user_ids(self, t):
        """The user IDs with a self-signature valid at t (the newest, not expired) and not
        revoked by the key itself."""
        pm = self.primary.hash_material()
        out = []
        for uid, sigs in self.uids:
            m = pm + uid_material(uid)
            if self._newest_valid(sigs, (0x10, 0x11, 0x12, 0x13), m, t) is not None and \
                    not self._revoked(sigs, 0x30, m, t):
                out.append(uid)
        return out

    def certifications(self, uid, key):
        """The generic certifications (type 0x10) of user ID `uid` (bytes) that `key` made
        and that verify over this certificate's primary key and that user ID (RFC 4880
        5.2.4: the key packet as 0x99 || length || body, then 0xB4 || 4-byte length || the
        user ID, then the signature's hashed part and trailer)."""
        pm = self.primary.hash_material()
        return [s for u, sigs in self.uids if u == uid for s in sigs
                if s.type == 0x10 and s.check(key, pm + uid_material(u)) is None]


def malformed_is_pgp_error(parse):
    """Runs a parser of untrusted bytes; a malformed structure it trips over (an index or a
    length beyond the data) is reported as a PgpError, not a crash."""
    def wrapped(*args):
        try:
            return parse(*args)
        except (IndexError, struct.error, ValueError, TypeError) as e:
            raise PgpError(f"malformed OpenPGP data ({type(e).__name__}: {e})")
    return wrapped


read_cert = malformed_is_pgp_error(Cert)


def parse_armored_cert(text):
    return read_cert(dearmor(text, "PGP PUBLIC KEY BLOCK"))


@malformed_is_pgp_error
def message_recipients(binary):
    """The key IDs (16 upper-case hex) of a message's PKESK packets, in order. The message must
    have the sealed form of share-envelope.md and pin-file.md: v3 PKESK packets, then one
    SEIPD packet of version 1, nothing else (sherd-verify checks the same, in the same words)."""
    out, sealed = [], False
    for i, (tag, body) in enumerate(packets(binary)):
        if tag == TAG_PKESK and not sealed:
            if not body or body[0] != 3:
                raise PgpError(f"PKESK version {body[0] if body else '?'}: only v3 is read")
            out.append(body[1:9].hex().upper())
        elif tag == TAG_SEIPD and out and not sealed:
            if not body or body[0] != 1:
                raise PgpError(f"SEIPD version {body[0] if body else '?'}, expected 1")
            sealed = True
        else:
            raise PgpError("not the sealed form (PKESK packets, then one SEIPD v1 packet): "
                           f"packet {i + 1} has tag {tag}")
    if not sealed:
        raise PgpError("not the sealed form: no SEIPD packet after the PKESK packets")
    return out


@malformed_is_pgp_error
def one_signature_packet(binary):
    pk = packets(binary)
    if len(pk) != 1 or pk[0][0] != TAG_SIG:
        found = ", ".join(f"tag {t}" for t, _ in pk) or "nothing"
        raise PgpError(f"expected exactly one signature packet, found {found}")
    return Signature(pk[0][1])


# =============================================================================================
# 4. The transcript (docs/formats/transcript.md)
# =============================================================================================

HEADER_V3, HEADER_V2, HEADER_V1 = "sherd-transcript/3", "sherd-transcript/2", "sherd-transcript/1"
MAX_VALUE_LEN = 4096
HEX = "0123456789abcdef"
UPPER_HEX = "0123456789ABCDEF"


def valid_kind(kind):
    return (
        0 < len(kind) <= 64
        and all(c in "abcdefghijklmnopqrstuvwxyz0123456789._-" for c in kind)
        and kind[0].isascii() and kind[0].isalnum()
    )


def valid_key(key):
    return (
        len(key) > 0
        and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in key)
        and key[0] != "-"
    )


def is_bare(value):
    return len(value) > 0 and all(0x21 <= ord(c) <= 0x7E and c not in '"\\=' for c in value)


def is_control(c):
    return unicodedata.category(c) == "Cc"


class FieldError(Exception):
    pass


def rq(text):
    """A string quoted about as Rust's {:?} quotes it (for messages worded like sherd-verify's):
    backslash and quote escaped, other unprintable characters as \\u{hex}."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif c != " " and unicodedata.category(c) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn",
                                                       "Cs", "Mn", "Me"):
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def parse_fields(text):
    """A record value as its list of (key, value) fields: one spelling per value, quoting only
    where needed, single spaces between fields."""
    fields, rest = [], text
    while True:
        eq = rest.find("=")
        if eq < 0:
            raise FieldError(f"expected key=value at {rq(rest)}")
        key = rest[:eq]
        if not valid_key(key):
            raise FieldError(f"invalid field key {rq(key)}")
        rest = rest[eq + 1 :]
        if rest.startswith('"'):
            v, i = [], 1
            while True:
                if i >= len(rest):
                    raise FieldError(f"{key}: unterminated quoted value")
                c = rest[i]
                if c == '"':
                    break
                if c == "\\":
                    if i + 1 < len(rest) and rest[i + 1] in '"\\':
                        v.append(rest[i + 1])
                        i += 2
                        continue
                    raise FieldError(f'{key}: only \\" and \\\\ are escapes')
                v.append(c)
                i += 1
            value = "".join(v)
            if is_bare(value):
                raise FieldError(f"{key}: {rq(value)} must be written without quotes")
            rest = rest[i + 1 :]
        else:
            end = rest.find(" ")
            end = len(rest) if end < 0 else end
            value = rest[:end]
            if not is_bare(value):
                raise FieldError(f"{key}: {rq(value)} must be quoted (or is empty)")
            rest = rest[end:]
        fields.append((key, value))
        if rest == "":
            return fields
        if not rest.startswith(" ") or rest[1:] == "" or rest[1:].startswith(" "):
            raise FieldError("fields are separated by single spaces")
        rest = rest[1:]


def dec(text):
    """A decimal number without sign or leading zeros, or None."""
    if text.isascii() and text.isdigit() and str(int(text)) == text:
        return int(text)
    return None


def is_hash32(text):
    return len(text) == 64 and all(c in HEX for c in text)


def is_fpr(text):
    return len(text) == 40 and all(c in UPPER_HEX for c in text)


# The core's record kinds, their fields in order, and each field's type.
def _u8(v):
    n = dec(v)
    return n if n is not None and n <= 255 else None


def _num(v):
    return dec(v)


def _text(v):
    return v


def _hash(v):
    return v if is_hash32(v) else None


def _fpr(v):
    return v if is_fpr(v) else None


def _fprs(v):
    parts = v.split(",")
    return parts if all(is_fpr(p) for p in parts) else None


def _ok(v):
    return v if v == "ok" else None


def _total(v):
    if v == "over-2^128":
        return v
    n = dec(v)
    return n if n is not None and n < 2**128 - 1 else None


def _policy(v):
    return v if v in ("all", "cyclic-windows+random") else None


WHAT = {
    _u8: "a decimal number", _num: "a decimal number", _text: "text",
    _hash: "64 lower-case hex digits", _fpr: "a fingerprint, 40 upper-case hex digits",
    _fprs: "fingerprints separated by commas", _ok: "ok",
    _total: "a decimal number or over-2^128", _policy: "all or cyclic-windows+random",
}

CORE_FIELDS = {
    "ceremony.plan": [("id", _text), ("time", _text), ("threshold", _u8), ("holders", _num),
                      ("witnesses", _num)],
    "plan.hash": _hash,
    "root.fingerprint": _fpr,
    "location.cert": [("holder", _u8), ("fingerprint", _fpr), ("subkey", _fpr)],
    "share.sealed": [("holder", _u8), ("sha256", _hash)],
    "card.provisioned": [("holder", _u8), ("card", _u8), ("serial", _text), ("location", _fpr),
                         ("test-decrypt", _ok)],
    "pins.sealed": [("holder", _u8), ("sha256", _hash), ("recipients", _fprs)],
    "verify.subsets": [("checked", _num), ("total", _total), ("policy", _policy)],
    "verify.self-test": [("nonce", _hash), ("result", _ok)],
    "dual.shamir": [("second", _text), ("splits", _num), ("shares", _num),
                    ("combinations", _num)],
    "dual.signatures": [("second", _text), ("checks", _num)],
    "dual.fingerprint": [("second", _text), ("checks", _num), ("hkdf", _num)],
    "output.file": [("path", _text), ("size", _num), ("sha256", _hash)],
    "ceremony.end": [("files", _num)],
    "witness.confirm": [("name", _text), ("step", _text)],
}
# The ceremony's order of the core's kinds (check 4); witness.confirm has no place.
ORDER = ["ceremony.plan", "plan.hash", "root.fingerprint", "location.cert", "share.sealed",
         "card.provisioned", "pins.sealed", "verify.subsets", "verify.self-test", "dual.shamir",
         "dual.signatures", "dual.fingerprint", "output.file", "ceremony.end"]
# Core kinds since format 2 (witness.confirm) and 3 (dual.*); format 1 had them as free text.
NOT_CORE_IN_FORMAT_1 = ("witness.confirm", "dual.shamir", "dual.signatures", "dual.fingerprint")


def parse_core(kind, value, spec=None):
    """A core record's value as a dict (or the bare value for plan.hash, root.fingerprint);
    raises FieldError worded like sherd's RecordError. `spec`: the fields of another kind
    (a recovery record's), else the core kind's."""
    spec = CORE_FIELDS[kind] if spec is None else spec
    if not isinstance(spec, list):
        v = spec(value)
        if v is None:
            raise FieldError(f"{kind}: field value={rq(value)} is not {WHAT[spec]}")
        return v
    try:
        fields = parse_fields(value)
    except FieldError as e:
        raise FieldError(f"{kind}: {e}")
    out = {}
    for i, (key, typ) in enumerate(spec):
        if i >= len(fields):
            raise FieldError(f"{kind}: expected field {key}=, found the end of the record")
        k, v = fields[i]
        if k != key:
            raise FieldError(f"{kind}: expected field {key}=, found {k}=")
        parsed = typ(v)
        if parsed is None:
            raise FieldError(f"{kind}: field {key}={rq(v)} is not {WHAT[typ]}")
        out[key] = parsed
    if len(fields) > len(spec):
        raise FieldError(
            f"{kind}: expected field the end of the record=, found {fields[len(spec)][0]}="
        )
    return out


class Record:
    def __init__(self, seq, prev, kind, value, line):
        self.seq, self.prev, self.kind, self.value = seq, prev, kind, value
        self.hash = hashlib.sha256(line.encode()).digest()
        self.core = None  # parsed core fields, for the core's kinds


class Transcript:
    def __init__(self, data):
        """Parses and checks the hash chain; raises Failure naming transcript.txt."""
        bad = lambda why: transcript_error("transcript.txt", why)  # noqa: E731
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise bad("the transcript is not UTF-8")
        if not text.endswith("\n"):
            raise bad("the transcript must end with a newline (it may have been truncated)")
        lines = text[:-1].split("\n")
        if lines[0] == HEADER_V3:
            self.format = 3
        elif lines[0] == HEADER_V2:
            self.format = 2
        elif lines[0] == HEADER_V1:
            self.format = 1
        else:
            raise bad(f"line 1 must be exactly {rq(HEADER_V3)} (or {rq(HEADER_V2)} or "
                      f"{rq(HEADER_V1)} for the earlier formats)")
        self.genesis = hashlib.sha256(lines[0].encode()).digest()
        self.records = []
        for i, line in enumerate(lines[1:]):
            lineno = i + 2
            parts = line.split(" ", 3)
            if len(parts) != 4:
                raise bad(f"line {lineno}: expected: number, previous hash, kind, value, "
                          "separated by single spaces")
            seq, prev, kind, value = parts
            expected = len(self.records) + 1
            if seq != str(expected):
                raise bad(f"line {lineno}: record number {seq}, expected {expected} "
                          "(records missing, repeated or reordered)")
            if not is_hash32(prev):
                raise bad(f"line {lineno}: previous hash must be 64 lower-case hex digits")
            if prev != self.final_hash().hex():
                raise bad(f"line {lineno}: previous-hash {prev} does not match the hash of the "
                          f"record before, {self.final_hash().hex()}: the chain is broken")
            if not valid_kind(kind):
                raise bad(f"invalid record kind {rq(kind)}: use 1 to 64 of a-z, 0-9, '.', '_', '-'")
            if value == "":
                raise bad(f"invalid value for {kind}: empty")
            if len(value.encode()) > MAX_VALUE_LEN:
                raise bad(f"invalid value for {kind}: longer than 4096 bytes")
            if any(is_control(c) for c in value):
                raise bad(f"invalid value for {kind}: control characters (including newlines) "
                          "are not allowed")
            rec = Record(expected, prev, kind, value, line)
            core = kind in CORE_FIELDS and (self.format >= 2 or kind not in NOT_CORE_IN_FORMAT_1)
            try:
                if core:
                    rec.core = parse_core(kind, value)
                elif self.format >= 2:
                    parse_fields(value)
            except FieldError as e:
                msg = str(e) if core else f"{kind}: {e}"
                raise bad(f"record {expected}: {msg}")
            self.records.append(rec)

    def final_hash(self):
        return self.records[-1].hash if self.records else self.genesis

    def core(self, kind=None):
        return [r for r in self.records if r.core is not None and (kind is None or r.kind == kind)]

    def of_kind(self, kind):
        return [r for r in self.records if r.kind == kind]


def one(recs, kind):
    if len(recs) == 1:
        return recs[0]
    if not recs:
        raise missing_record(f"no {kind} record")
    raise missing_record(f"more than one {kind} record")


# =============================================================================================
# 5. The plan (docs/formats/plan.md): parsed and checked enough to recompute the canonical
#    hash and compare everything the folder states about it.
# =============================================================================================


def rfc3339(unix):
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def check_id(cid):
    if not (0 < len(cid) <= 64 and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in cid)
            and cid[0] != "-"):
        raise ValueError(f"ceremony_id {rq(cid)}: use 1 to 64 of a-z, 0-9, '-', not starting "
                         "with '-'")


def check_name(what, name):
    if not isinstance(name, str) or not (0 < len(name.encode()) <= 64) or \
            any(is_control(c) for c in name) or name != name.strip():
        raise ValueError(f"{what} name {name!r}: 1 to 64 bytes, no control characters, "
                         "no spaces at either end")


def only_keys(table, allowed, where):
    extra = set(table) - set(allowed)
    if extra:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")


def spelled_datetime(text, table, key):
    """How `key = <date-time>` is written in `table` (None: the top level, before the first
    table) of a TOML text: tomllib reads +00:00 as UTC like Z, and drops digits of a fraction
    beyond microseconds, so the documents' rules are checked on the text. None when no such
    line is found (an inline table, say)."""
    current, spelled = None, None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("["):
            m = re.match(r"\[\[?\s*([A-Za-z0-9_.\"'-]+?)\s*\]\]?\s*(#.*)?$", s)
            current = m.group(1).replace('"', "").replace("'", "") if m else "?"
            continue
        if current != table:
            continue
        m = re.match(r"""(?:%s|"%s"|'%s')\s*=\s*(\d{4}-\d\d-\d\d[Tt ][0-9:.]+(?:[Zz]|[+-]\d\d:\d\d)?)"""
                     % (key, key, key), s)
        if m:
            spelled = m.group(1)
    return spelled


class PersonalCert:
    def __init__(self, armored, where):
        try:
            binary = dearmor(armored, "PGP PUBLIC KEY BLOCK")
            self.cert = read_cert(binary)
        except PgpError as e:
            raise ValueError(f"{where}: {e}")
        self.fingerprint = self.cert.fingerprint
        self.sha256 = hashlib.sha256(binary).hexdigest()


class Plan:
    def __init__(self, text, raw=None):
        """`text`: plan.toml. Or `raw`, the table already read, whose time was already
        checked for its trailing Z (a reshare request's new plan, request.md)."""
        if raw is None:
            try:
                raw = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"not TOML: {e}")
        only_keys(raw, ["format", "ceremony_id", "time", "threshold", "allow_threshold_one",
                        "allow_virtual_hardware", "require_witness_signatures", "machine",
                        "holder", "witness", "policy"], "plan")
        if raw.get("format") != "sherd-plan/1":
            raise ValueError(f"format {raw.get('format')!r}, expected 'sherd-plan/1'")
        self.ceremony_id = raw.get("ceremony_id")
        if not isinstance(self.ceremony_id, str):
            raise ValueError("ceremony_id missing")
        check_id(self.ceremony_id)
        t = raw.get("time")
        if not isinstance(t, datetime.datetime) or t.tzinfo is None or \
                t.utcoffset() != datetime.timedelta(0) or t.microsecond:
            raise ValueError("time must be a UTC offset date-time in whole seconds")
        # tomllib reads +00:00 as UTC too; plan.md wants the trailing Z, so look at the text
        # (the top-level `time = ...` line, before the first table).
        spelled = spelled_datetime(text, None, "time") if text is not None else "Z"
        if spelled is None or spelled[-1] not in "Zz":
            raise ValueError(f"time {spelled or '(not found on a time = line)'}: must be in UTC, "
                             "written with a trailing Z")
        self.time = int(t.timestamp())
        if t.year < 2020:
            raise ValueError("time is before 2020")
        self.time_text = rfc3339(self.time)
        for flag in ("allow_threshold_one", "allow_virtual_hardware", "require_witness_signatures"):
            if not isinstance(raw.get(flag, False), bool):
                raise ValueError(f"{flag} must be true or false")
        self.allow_threshold_one = raw.get("allow_threshold_one", False)
        self.allow_virtual_hardware = raw.get("allow_virtual_hardware", False)
        self.require_witness_signatures = raw.get("require_witness_signatures", False)
        holders = raw.get("holder", [])
        if not (1 <= len(holders) <= 255):
            raise ValueError("1 to 255 [[holder]] tables are needed")
        self.threshold = raw.get("threshold")
        if type(self.threshold) is not int or not 1 <= self.threshold <= len(holders):
            raise ValueError(f"threshold {self.threshold!r} is not in 1..={len(holders)}")
        if self.threshold == 1 and not self.allow_threshold_one:
            raise ValueError("threshold 1 needs allow_threshold_one = true")
        self.holders = []
        names = [h.get("name") for h in holders]
        seen_fprs = set()

        def certs_of(lst, where):
            if not isinstance(lst, list) or not all(isinstance(c, str) for c in lst):
                raise ValueError(f"{where}: certs must be a list of armored certificates")
            out = [PersonalCert(c, f"{where} certificate {i + 1}") for i, c in enumerate(lst)]
            for c in out:
                if c.fingerprint in seen_fprs:
                    raise ValueError(f"{where}: certificate {c.fingerprint} appears twice in "
                                     "the plan")
                seen_fprs.add(c.fingerprint)
            return out

        for i, h in enumerate(holders):
            where = f"holder {i + 1}"
            only_keys(h, ["name", "backup", "cards", "certs"], where)
            check_name(where, h.get("name"))
            if names.count(h["name"]) != 1:
                raise ValueError(f"{where}: name {h['name']!r} is not unique")
            if h.get("backup") not in names or h.get("backup") == h["name"]:
                raise ValueError(f"{where}: backup {h.get('backup')!r} is not another holder")
            cards = h.get("cards")
            if type(cards) is not int or not 1 <= cards <= 8:
                raise ValueError(f"{where}: cards {cards!r} is not in 1..=8")
            certs = certs_of(h.get("certs"), where)
            if not certs:
                raise ValueError(f"{where}: at least one personal certificate is needed")
            for c in certs:
                if not c.cert.encryption_keys(self.time):
                    raise ValueError(f"{where}: certificate {c.fingerprint} has no live "
                                     "encryption key at the plan time")
            self.holders.append({"index": i + 1, "name": h["name"], "backup_name": h["backup"],
                                 "backup": names.index(h["backup"]) + 1, "cards": cards,
                                 "certs": certs})
        witnesses = raw.get("witness", [])
        if not witnesses:
            raise ValueError("at least one [[witness]] is needed")
        self.witnesses = []
        wnames = [w.get("name") for w in witnesses]
        for k, w in enumerate(witnesses):
            where = f"witness {k + 1}"
            only_keys(w, ["name", "certs"], where)
            check_name(where, w.get("name"))
            if wnames.count(w["name"]) != 1:
                raise ValueError(f"{where}: name {w['name']!r} is not unique")
            certs = certs_of(w.get("certs", []), where)
            for c in certs:
                if not c.cert.signing_keys(self.time):
                    raise ValueError(f"{where}: certificate {c.fingerprint} has no live "
                                     "signing key at the plan time")
            self.witnesses.append({"index": k + 1, "name": w["name"], "certs": certs})
        if self.require_witness_signatures:
            none = [w["name"] for w in self.witnesses if not w["certs"]]
            if none:
                raise ValueError("require_witness_signatures, but no certificate for: "
                                 + ", ".join(none))
        self.machine = raw.get("machine")
        if self.machine is not None:
            only_keys(self.machine, ["name", "quote_key"] + [f"pcr{i}" for i in range(8)],
                      "[machine]")
            check_name("[machine]", self.machine.get("name"))
            for key, n in [(f"pcr{i}", 32) for i in range(8)] + [("quote_key", 34)]:
                v = self.machine.get(key)
                if v is not None:
                    try:
                        ok = len(bytes.fromhex(v)) == n and len(v) == 2 * n
                    except (ValueError, TypeError):
                        ok = False
                    if not ok or (key == "quote_key" and not v.lower().startswith("000b")):
                        raise ValueError(f"[machine] {key}: {rq(v)} is not {2 * n} hex digits")
            if len(self.machine) < 2:
                raise ValueError("[machine] must record at least one value")
        self.policy = self._policy(raw.get("policy"))
        self.hash = hashlib.sha256(self.canonical().encode()).hexdigest()

    POLICY_OPERATIONS = ("sign", "certify", "prove-quorum", "reshare", "replace-card")
    POLICY_LIMITS = {"sign": ("max_files", 255), "certify": ("max_user_ids", 32)}

    def _policy(self, raw):
        """The [policy] table (plan.md, "The signing policy"), or None."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise ValueError("policy: must be a table")
        only_keys(raw, ["approver", *self.POLICY_OPERATIONS], "policy")
        approvers = raw.get("approver", [])
        if not isinstance(approvers, list) or not approvers or len(approvers) > 255:
            raise ValueError("policy: 1 to 255 [[policy.approver]] tables are needed")
        names = [a.get("name") if isinstance(a, dict) else None for a in approvers]
        seen = set()
        out = {"approvers": [], "rules": [], "k": {}}
        for i, a in enumerate(approvers):
            where = f"policy.approver[{i + 1}]"
            if not isinstance(a, dict):
                raise ValueError(f"{where}: must be a table")
            only_keys(a, ["name", "certs"], where)
            check_name(where, a.get("name"))
            if names.count(a["name"]) != 1:
                raise ValueError(f"{where}: name {a['name']!r} is not unique")
            lst = a.get("certs")
            if not isinstance(lst, list) or not lst or \
                    not all(isinstance(c, str) for c in lst):
                raise ValueError(f"{where}.certs: one or more armored certificates are needed")
            certs = [PersonalCert(c, f"{where} certificate {j + 1}") for j, c in enumerate(lst)]
            for c in certs:
                # One key may not count for two approvers; a holder's or witness's may approve.
                if c.fingerprint in seen:
                    raise ValueError(f"{where}: certificate {c.fingerprint} is given for two "
                                     "approvers")
                seen.add(c.fingerprint)
                if not c.cert.signing_keys(self.time):
                    raise ValueError(f"{where}: certificate {c.fingerprint} has no live "
                                     "signing key at the plan time")
            out["approvers"].append({"index": i + 1, "name": a["name"], "certs": certs})
        for op in self.POLICY_OPERATIONS:
            rule = raw.get(op)
            where = f"policy.{op}"
            if not isinstance(rule, dict):
                raise ValueError(f"{where}: missing; every operation needs its table")
            limit = self.POLICY_LIMITS.get(op)
            only_keys(rule, ["k"] + ([limit[0]] if limit else []), where)
            k = rule.get("k")
            if type(k) is not int or not 1 <= k <= len(approvers):
                raise ValueError(f"{where}.k: {k!r} is not in 1..={len(approvers)}")
            out["k"][op] = k
            line = f"policy_rule={op}\tk={k}"
            if limit and limit[0] in rule:
                n = rule[limit[0]]
                if type(n) is not int or not 1 <= n <= limit[1]:
                    raise ValueError(f"{where}.{limit[0]}: {n!r} is not in 1..={limit[1]}")
                line += f"\t{limit[0]}={n}"
            out["rules"].append(line)
        return out

    def canonical(self):
        lines = ["sherd-plan/1", f"ceremony_id={self.ceremony_id}", f"time={self.time}",
                 f"threshold={self.threshold}",
                 f"allow_threshold_one={'true' if self.allow_threshold_one else 'false'}"]
        if self.allow_virtual_hardware:
            lines.append("allow_virtual_hardware=true")
        lines.append(f"holders={len(self.holders)}")
        for h in self.holders:
            lines.append(f"holder={h['index']}\tname={h['name']}\tbackup={h['backup_name']}"
                         f"\tcards={h['cards']}")
            for c in h["certs"]:
                lines.append(f"cert={h['index']}\t{c.fingerprint}\t{c.sha256}")
        lines.append(f"witnesses={len(self.witnesses)}")
        for w in self.witnesses:
            lines.append(f"witness={w['name']}")
            for c in w["certs"]:
                lines.append(f"witness_cert={w['index']}\t{c.fingerprint}\t{c.sha256}")
        if self.require_witness_signatures:
            lines.append("require_witness_signatures=true")
        if self.machine is not None:
            lines.append(f"machine={self.machine['name']}")
            for i in range(8):
                if f"pcr{i}" in self.machine:
                    lines.append(f"machine_pcr={i}\t{self.machine[f'pcr{i}'].lower()}")
            if "quote_key" in self.machine:
                lines.append(f"machine_quote_key={self.machine['quote_key'].lower()}")
        if self.policy is not None:
            lines.append(f"policy_approvers={len(self.policy['approvers'])}")
            for a in self.policy["approvers"]:
                lines.append(f"approver={a['index']}\tname={a['name']}")
                for c in a["certs"]:
                    lines.append(f"approver_cert={a['index']}\t{c.fingerprint}\t{c.sha256}")
            lines.extend(self.policy["rules"])
        return "".join(line + "\n" for line in lines)


# =============================================================================================
# 6. The shard file (docs/formats/shard-file.md)
# =============================================================================================


class ShardFile:
    """Raises ValueError worded like sherd's ShardFileError."""

    def __init__(self, text):
        try:
            raw = tomllib.loads(text)
            only_keys(raw, ["format", "ceremony_id", "plan_hash", "threshold", "count",
                            "key_time", "root_fingerprint", "root_cert", "share"], "shard file")
            for s in raw.get("share", []):
                only_keys(s, ["index", "holder", "location_fingerprint", "location_cert",
                              "message_sha256", "message"], "[[share]]")
        except (tomllib.TOMLDecodeError, ValueError) as e:
            raise ValueError(f"the shard file is not valid TOML for this schema: {e}")

        def field(name, reason):
            return ValueError(f"field {name}: {reason}")

        if raw.get("format") != "sherd-shards/1":
            raise ValueError(f"unsupported shard file format {rq(str(raw.get('format')))}: this "
                             f"build reads \"sherd-shards/1\"")
        self.ceremony_id = raw.get("ceremony_id")
        try:
            check_id(self.ceremony_id if isinstance(self.ceremony_id, str) else "")
        except ValueError as e:
            raise field("ceremony_id", e)
        self.plan_hash = raw.get("plan_hash")
        if not isinstance(self.plan_hash, str) or not is_hash32(self.plan_hash):
            raise field("plan_hash", "must be 64 lower-case hex digits")
        self.count, self.threshold = raw.get("count"), raw.get("threshold")
        if type(self.count) is not int or not 1 <= self.count <= 255:
            raise field("count", f"{self.count} is not in 1..=255")
        if type(self.threshold) is not int or not 1 <= self.threshold <= self.count:
            raise field("threshold", f"{self.threshold} is not in 1..={self.count}")
        self.key_time = raw.get("key_time")
        if type(self.key_time) is not int or not 0 <= self.key_time < 2**32:
            raise field("key_time", f"{self.key_time} is not a 32-bit Unix time")
        self.root_fingerprint = raw.get("root_fingerprint")
        try:
            self.root_cert = parse_armored_cert(raw.get("root_cert", ""))
        except PgpError as e:
            raise field("root_cert", e)
        if self.root_cert.fingerprint != self.root_fingerprint:
            raise field("root_fingerprint", f"{self.root_fingerprint} does not match root_cert "
                        f"({self.root_cert.fingerprint})")
        shares = raw.get("share", [])
        if len(shares) != self.count:
            raise field("share", f"{len(shares)} shares listed, count says {self.count}")
        self.shares = []
        for pos, s in enumerate(shares):
            def bad(reason):
                return ValueError(f"share {pos + 1} (index {s.get('index')}): {reason}")

            if s.get("index") != pos + 1:
                raise bad(f"expected index {pos + 1} here: shares must be listed "
                          f"1..={self.count} in order")
            try:
                check_name("holder", s.get("holder"))
            except ValueError as e:
                raise bad(e)
            try:
                loc = parse_armored_cert(s.get("location_cert", ""))
            except PgpError as e:
                raise bad(f"location_cert: {e}")
            if loc.fingerprint != s.get("location_fingerprint"):
                raise bad(f"location_fingerprint {s.get('location_fingerprint')} does not match "
                          f"location_cert ({loc.fingerprint})")
            try:
                message = dearmor(s.get("message", ""), "PGP MESSAGE")
            except PgpError as e:
                raise bad(f"message: {e}")
            digest = hashlib.sha256(message).hexdigest()
            if digest != s.get("message_sha256"):
                raise bad(f"message_sha256 is {s.get('message_sha256')}, the message hashes to "
                          f"{digest}")
            keys = loc.encryption_keys(self.key_time + 1)
            try:
                recipients = message_recipients(message)
            except PgpError as e:
                raise bad(f"message: {e}")
            if len(recipients) != 1 or recipients[0] not in [k.keyid for k in keys]:
                raise bad("message is encrypted to [" + ", ".join(rq(r) for r in recipients)
                          + "], expected exactly the location key "
                          + ",".join(k.fingerprint for k in keys))
            self.shares.append({"index": pos + 1, "holder": s["holder"], "location_cert": loc,
                                "message": message, "message_sha256": digest})


# =============================================================================================
# 7. The folder checks, in the order of sherd-verify (docs/formats/ceremony-outputs.md)
# =============================================================================================

MIX_CONTEXT = ("sherd 2026-11-24 entropy mixer v1: ChaCha20 DRBG seed from committed source "
               "contributions")
EXHAUSTIVE_BOUND, RANDOM_SUBSETS = 20_000, 1_000


def folder_reader(folder):
    """Reads a path relative to the folder; refuses paths that could leave it (absolute, empty
    components, `..`, or a symbolic link pointing outside). A missing file raises a Failure
    whose `not_found` is True."""
    root = os.path.realpath(folder)

    def read(path):
        if path.startswith("/") or any(c in ("", "..") for c in path.split("/")):
            raise unreadable(path, "path leaves the folder")
        full = os.path.realpath(os.path.join(root, path))
        if not full.startswith(root + os.sep):
            raise unreadable(path, "path leaves the folder (a symbolic link)")
        try:
            with open(full, "rb") as f:
                return f.read()
        except FileNotFoundError:
            e = unreadable(path, "No such file or directory (os error 2)")
            e.not_found = True
            raise e
        except OSError as e:
            raise unreadable(path, f"{e.strerror} (os error {e.errno})")

    return read


def check_root_cert(cert):
    t = cert.primary.created + 1
    try:
        flags = cert.primary_flags(t)
    except PgpError as e:
        raise invalid("root-cert.asc", f"not valid at its creation time: {e}")
    if cert.primary.curve != "ed25519" or cert.primary.algo != ALGO_EDDSA:
        raise invalid("root-cert.asc", "primary key is not Ed25519")
    if not (flags & FLAG_CERTIFY and flags & FLAG_SIGN):
        raise invalid("root-cert.asc", "primary key is not marked for certification and signing")
    subs = cert.bound_subkeys(t)
    if len(subs) != 1:
        raise invalid("root-cert.asc", f"expected one subkey, found {len(subs)}")
    key, sub_flags = subs[0]
    if key.curve != "cv25519" or key.algo != ALGO_ECDH:
        raise invalid("root-cert.asc", "subkey is not Cv25519")
    if not (sub_flags & FLAG_ENCRYPT_COMMS and sub_flags & FLAG_ENCRYPT_STORAGE):
        raise invalid("root-cert.asc", "subkey is not marked for encryption")


def check_location_cert(cert, plan_time):
    if cert.primary.created != plan_time:
        raise ValueError("not created at the plan time")
    keys = cert.encryption_keys(plan_time + 1)
    if len(keys) != 1:
        raise ValueError(f"expected one encryption key, found {len(keys)}")
    if keys[0].curve != "cv25519":
        raise ValueError("the encryption key is not Cv25519")
    return keys[0].fingerprint


@malformed_is_pgp_error
def verify_data_signature(sig_bytes, data, keys, time, what):
    """Checks one binary signature packet (type 0x00) over data by one of `keys` (Key
    objects), made at `time` if given. Returns the key that made it; raises PgpError."""
    sig = one_signature_packet(sig_bytes)
    if sig.type != 0x00:
        raise PgpError(f"signature type {sig.type:#04x}, expected binary document (0x00)")
    if time is not None and sig.created != time:
        made = rfc3339(sig.created) if sig.created is not None else "an unknown time"
        raise PgpError(f"made at {made}, not at the plan time {rfc3339(time)} (every signature "
                       "of the ceremony carries the plan time)")
    # Every key is tried, the named issuer first: the issuer subpackets may be unhashed, so
    # they only save work (as sherd-verify, which tries every key).
    ids = sig.issuers()
    named = [k for k in keys if k.fingerprint in ids or k.keyid in ids]
    whys = []
    for key in named + [k for k in keys if k not in named]:
        why = sig.check(key, data)
        if why is None:
            return key, sig
        whys.append(why)
    if not keys:
        raise PgpError(f"not made by {what}: there is none")
    if not named:
        raise PgpError(f"not made by {what} (it names another issuer, "
                       f"{', '.join(sorted(ids)) or 'none'}): {whys[0]}")
    raise PgpError(whys[0])


def expected_subsets(n, m):
    total = math.comb(n, m)
    if total >= 2**128 - 1:
        total_text = "over-2^128"
    else:
        total_text = str(total)
    if total <= EXHAUSTIVE_BOUND:
        return total_text, total, "all"
    return total_text, n + RANDOM_SUBSETS, "cyclic-windows+random"


def verify_folder(folder):
    """Runs the checks; returns the report (a dict) or raises Failure."""
    get = folder_reader(folder)

    # 1. The transcript's chain and fields; ceremony.end is last.
    transcript_bytes = get("transcript.txt")
    t = Transcript(transcript_bytes)
    core = t.core()
    if not core or core[-1].kind != "ceremony.end" or core[-1].seq != len(t.records):
        raise missing_record("the last record is not ceremony.end: the transcript is incomplete")

    # 2. The root certificate, and 3. the transcript's signature by it.
    root_rec = one(t.core("root.fingerprint"), "root.fingerprint")
    root_fpr = root_rec.core
    root_bytes = get("root-cert.asc")
    try:
        root_cert = parse_armored_cert(root_bytes)
    except PgpError as e:
        raise invalid("root-cert.asc", str(e))
    if root_cert.fingerprint != root_fpr:
        raise mismatch("root certificate fingerprint (root-cert.asc)",
                       rec_name(root_rec.seq, "root.fingerprint"), root_fpr, root_cert.fingerprint)
    check_root_cert(root_cert)
    sig_bytes = get("transcript.txt.sig")
    try:
        try:
            sig_bin = dearmor(sig_bytes, "PGP SIGNATURE")
        except PgpError:
            sig_bin = sig_bytes  # a binary signature is read as well
        _, root_sig = verify_data_signature(sig_bin, transcript_bytes, [root_cert.primary], None,
                                            "the root certificate's primary key")
    except PgpError as e:
        raise transcript_error("transcript.txt.sig",
                               f"the transcript signature does not verify: {e}")

    # 4. The core's records in the ceremony's order; the once-only ones once.
    last = None
    for r in core:
        if r.kind not in ORDER:
            continue
        place = ORDER.index(r.kind)
        if last is not None and place < last[0]:
            raise bad_record(r.seq, r.kind,
                             f"out of the ceremony's order: it comes after a {last[1]} record")
        if last is None or place > last[0]:
            last = (place, r.kind)
    plan_rec = one(t.core("ceremony.plan"), "ceremony.plan")
    plan_hash_rec = one(t.core("plan.hash"), "plan.hash")
    subsets = one(t.core("verify.subsets"), "verify.subsets")
    one(t.core("verify.self-test"), "verify.self-test")
    end = one(t.core("ceremony.end"), "ceremony.end")

    # 5. Every output file by size and SHA-256; ceremony.end counts them.
    listed = {}
    outputs = t.core("output.file")
    for r in outputs:
        path = r.core["path"]
        data = get(path)
        digest = hashlib.sha256(data).hexdigest()
        if digest != r.core["sha256"]:
            raise mismatch(f"SHA-256 of {path}", rec_name(r.seq, "output.file"), r.core["sha256"],
                           digest)
        if len(data) != r.core["size"]:
            raise mismatch(f"size of {path}", rec_name(r.seq, "output.file"), r.core["size"],
                           len(data))
        if path in listed:
            raise bad_record(r.seq, "output.file", f"{path} is listed twice")
        listed[path] = data
    if end.core["files"] != len(outputs):
        raise mismatch("number of output.file records", rec_name(end.seq, "ceremony.end"),
                       end.core["files"], len(outputs))

    def listed_get(path):
        if path not in listed:
            raise missing_record(f"no output.file record for {path}")
        return listed[path]

    # 6. The plan, by its canonical hash; ceremony.plan states it.
    try:
        plan = Plan(listed_get("plan.toml").decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid("plan.toml", "not UTF-8")
    except ValueError as e:
        raise invalid("plan.toml", str(e))
    if plan_hash_rec.core != plan.hash:
        raise mismatch("canonical hash of plan.toml", rec_name(plan_hash_rec.seq, "plan.hash"),
                       plan_hash_rec.core, plan.hash)
    # The root key's signature over the transcript is dated the plan time (transcript.md).
    if root_sig.created != plan.time:
        raise mismatch("creation time of transcript.txt.sig", "plan.toml", plan.time,
                       root_sig.created)
    stated = plan_rec.core
    for field, recorded, from_plan in [
        ("id", stated["id"], plan.ceremony_id), ("time", stated["time"], plan.time_text),
        ("threshold", stated["threshold"], plan.threshold),
        ("holders", stated["holders"], len(plan.holders)),
        ("witnesses", stated["witnesses"], len(plan.witnesses)),
    ]:
        if str(recorded) != str(from_plan):
            raise mismatch(f"{rec_name(plan_rec.seq, 'ceremony.plan')} {field}=", "plan.toml",
                           from_plan, recorded)

    # 7. The shard file against the plan and the transcript.
    try:
        shards = ShardFile(listed_get("shards.toml").decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid("shards.toml", "not UTF-8")
    except ValueError as e:
        raise invalid("shards.toml", str(e))
    for name, frm, found, expected in [
        ("ceremony_id", "plan.toml", shards.ceremony_id, plan.ceremony_id),
        ("plan_hash", "plan.toml (canonical hash)", shards.plan_hash, plan.hash),
        ("threshold", "plan.toml", shards.threshold, plan.threshold),
        ("count", "plan.toml (number of holders)", shards.count, len(plan.holders)),
        ("key_time", "plan.toml", shards.key_time, plan.time),
        ("root_fingerprint", rec_name(root_rec.seq, "root.fingerprint"), shards.root_fingerprint,
         root_fpr),
    ]:
        if str(found) != str(expected):
            raise mismatch(f"shards.toml {name}", frm, expected, found)
    sealed, locations = t.core("share.sealed"), t.core("location.cert")
    if len(sealed) != len(shards.shares) or len(locations) != len(shards.shares):
        raise missing_record(f"{len(sealed)} share.sealed and {len(locations)} location.cert "
                             f"records for {len(shards.shares)} shares")
    location_of = {}
    for s, rec, loc in zip(shards.shares, sealed, locations):
        h = plan.holders[s["index"] - 1]
        if s["holder"] != h["name"]:
            raise mismatch(f"shards.toml share {s['index']} holder name", "plan.toml", h["name"],
                           s["holder"])
        for r in (rec, loc):
            if r.core["holder"] != s["index"]:
                raise bad_record(r.seq, r.kind, f"holder={r.core['holder']} where share "
                                 f"{s['index']} of shards.toml is, in plan order")
        if rec.core["sha256"] != s["message_sha256"]:
            raise mismatch(f"shards.toml share {s['index']} ciphertext SHA-256",
                           rec_name(rec.seq, "share.sealed"), rec.core["sha256"],
                           s["message_sha256"])
        try:
            subkey = check_location_cert(s["location_cert"], plan.time)
        except (ValueError, PgpError) as e:
            raise invalid("shards.toml", f"share {s['index']}: location certificate: {e}")
        fpr = s["location_cert"].fingerprint
        if loc.core["fingerprint"] != fpr:
            raise mismatch(f"shards.toml share {s['index']} location certificate fingerprint",
                           rec_name(loc.seq, "location.cert"), loc.core["fingerprint"], fpr)
        if loc.core["subkey"] != subkey:
            raise mismatch(
                f"shards.toml share {s['index']} location certificate encryption subkey",
                rec_name(loc.seq, "location.cert"), loc.core["subkey"], subkey)
        location_of[s["index"]] = (fpr, f"{rec_name(loc.seq, 'location.cert')} and shards.toml "
                                         f"share {s['index']}")

    # 8. PIN files: hashed, and encrypted to exactly the holder's and backup's keys.
    pins = t.core("pins.sealed")
    if len(pins) != len(plan.holders):
        raise missing_record(f"{len(pins)} pins.sealed records for {len(plan.holders)} holders")
    for h, rec in zip(plan.holders, pins):
        if rec.core["holder"] != h["index"]:
            raise bad_record(rec.seq, "pins.sealed", f"holder={rec.core['holder']} where holder "
                             f"{h['index']} is, in the order of plan.toml")
        backup = plan.holders[h["backup"] - 1]
        certs = h["certs"] + backup["certs"]
        planned = [c.fingerprint for c in certs]
        if rec.core["recipients"] != planned:
            raise mismatch(f"{rec_name(rec.seq, 'pins.sealed')} recipients",
                           f"plan.toml (personal certificates of holder {h['index']}, then of "
                           f"backup holder {backup['index']})", ",".join(planned),
                           ",".join(rec.core["recipients"]))
        path = f"pins/holder-{h['index']:03d}.asc"
        data = listed_get(path)
        digest = hashlib.sha256(data).hexdigest()
        if rec.core["sha256"] != digest:
            raise mismatch(f"SHA-256 of {path}", rec_name(rec.seq, "pins.sealed"),
                           rec.core["sha256"], digest)
        try:
            found = sorted(set(message_recipients(dearmor(data, "PGP MESSAGE"))))
        except PgpError as e:
            raise invalid(path, str(e))
        expected = sorted({k.keyid for c in certs for k in c.cert.encryption_keys(plan.time)})
        if found != expected:
            raise mismatch(f"recipient key IDs of {path}",
                           f"plan.toml (encryption keys of holder {h['index']}'s and backup "
                           f"holder {backup['index']}'s personal certificates)",
                           ",".join(expected), ",".join(found))

    # 9. Cards: exactly the planned cards, each once, each serial once, each with its holder's
    #    location key.
    seen, serials = {}, {}
    for rec in t.core("card.provisioned"):
        r = rec.core
        if not (1 <= r["holder"] <= len(plan.holders)
                and 1 <= r["card"] <= plan.holders[r["holder"] - 1]["cards"]):
            raise bad_record(rec.seq, "card.provisioned", f"holder {r['holder']} card {r['card']} "
                             "is not a card plan.toml calls for")
        if (r["holder"], r["card"]) in seen:
            raise bad_record(rec.seq, "card.provisioned", f"holder {r['holder']} card {r['card']} "
                             f"was already provisioned in record {seen[(r['holder'], r['card'])]}")
        seen[(r["holder"], r["card"])] = rec.seq
        if r["serial"] in serials:
            raise bad_record(rec.seq, "card.provisioned", f"card serial {r['serial']} was already "
                             f"used in record {serials[r['serial']]}")
        serials[r["serial"]] = rec.seq
        fpr, frm = location_of[r["holder"]]
        if r["location"] != fpr:
            raise mismatch(f"{rec_name(rec.seq, 'card.provisioned')} location=", frm, fpr,
                           r["location"])
    cards = 0
    for h in plan.holders:
        for c in range(1, h["cards"] + 1):
            if (h["index"], c) not in seen:
                raise missing_record(f"holder {h['index']} card {c} was never provisioned "
                                     f"(plan.toml calls for {h['cards']} cards)")
            cards += 1

    # 10. verify.subsets for this plan's N and M.
    n, m = len(plan.holders), plan.threshold
    total_text, checked, policy = expected_subsets(n, m)
    s = subsets.core
    for field, expected, found in [("total", total_text, str(s["total"])),
                                   ("policy", policy, s["policy"]),
                                   ("checked", str(checked), str(s["checked"]))]:
        if expected != found:
            raise mismatch(
                f"{rec_name(subsets.seq, 'verify.subsets')} {field}=",
                f"plan.toml (N={n}, M={m}: C(N, M) = {total_text}; every subset up to "
                f"{EXHAUSTIVE_BOUND}, else N windows + {RANDOM_SUBSETS} random)", expected, found)

    # 15. What the second implementations cross-checked (format 3).
    dual = check_dual(t, plan, s["checked"])

    # 13. The TPM quote, 14. the boot verdicts recomputed.
    quote, outcome = check_quote(t, plan, plan_hash_rec.seq, root_rec.seq)
    boot = check_boot(t, plan, outcome, root_rec.seq)
    if quote[0] == "failed" and boot is None:
        # Before verdicts were recorded, a quote that does not verify had no deviation.
        raise missing_record(f"the TPM quote does not verify ({quote[2]}) and no "
                             "attest.deviation records why the ceremony went on")
    # 12. The entropy step.
    entropy = check_entropy(t, plan, plan_hash_rec.seq, root_rec.seq)
    # 11. Witness signatures.
    witnesses = check_witness_signatures(get, plan, transcript_bytes)

    return {
        "ceremony_id": plan.ceremony_id, "root_fingerprint": root_fpr,
        "threshold": plan.threshold, "count": len(plan.holders), "cards": cards,
        "plan_hash": plan.hash, "records": len(t.records), "files_checked": len(listed) + 2,
        "quote": quote, "entropy": entropy, "boot": boot, "witnesses": witnesses, "dual": dual,
        "final_hash": t.final_hash().hex(), "final_words": pgp_words(t.final_hash()),
        "header": {3: HEADER_V3, 2: HEADER_V2, 1: HEADER_V1}[t.format],
        "plan": plan, "shards": shards, "root_cert": root_cert, "files": listed,
        "card_serials": {h["index"]: [rec.core["serial"] for rec in sorted(
            (rec for rec in t.core("card.provisioned") if rec.core["holder"] == h["index"]),
            key=lambda rec: rec.core["card"])] for h in plan.holders},
    }


def check_dual(t, plan, subsets_checked):
    """Check 15: in format 3, dual.shamir, dual.signatures and dual.fingerprint once each, with
    the counts this plan's ceremony makes (docs/dual-implementations.md): one split into N
    shares and more combinations than verify.subsets checked; 2N + 4 root signatures; 2N + 2
    fingerprints and 2 HKDF outputs. Returns None for an earlier format (not recorded)."""
    if t.format != 3:
        return None
    kinds = ["dual.shamir", "dual.signatures", "dual.fingerprint"]
    missing = [k for k in kinds if not t.core(k)]
    if missing:
        raise missing_record(f"no {', '.join(missing)} record: a {HEADER_V3} transcript must "
                             "record what the second implementations cross-checked")
    sh, sg, fp = (one(t.core(k), k) for k in kinds)
    n = len(plan.holders)

    def expect(rec, field, what, expected, found):
        if expected != found:
            raise mismatch(f"{rec_name(rec.seq, rec.kind)} {field}=",
                           f"plan.toml (N={n}: {what})", expected, found)

    expect(sh, "splits", "one split", 1, sh.core["splits"])
    expect(sh, "shares", "one share per holder", n, sh.core["shares"])
    if sh.core["combinations"] <= subsets_checked:
        raise bad_record(sh.seq, "dual.shamir",
                         f"combinations={sh.core['combinations']}, but verify.subsets checked "
                         f"{subsets_checked} subsets and the cards' decryptions were recombined "
                         f"too: at least {subsets_checked + 1}")
    expect(sg, "checks", "3 self-signatures, N envelopes, N PIN files, the self-test: 2N + 4",
           2 * n + 4, sg.core["checks"])
    expect(fp, "checks", "primary key and subkey of the root and of each location certificate: "
           "2N + 2", 2 * n + 2, fp.core["checks"])
    expect(fp, "hkdf", "the root primary seed and subkey scalar: 2", 2, fp.core["hkdf"])
    return {"shamir": (sh.core["second"], sh.core["combinations"]),
            "signatures": (sg.core["second"], sg.core["checks"]),
            "fingerprints": (fp.core["second"], fp.core["checks"], fp.core["hkdf"]),
            "format": t.format}


def dual_line(d, header):
    if d is None:
        return (f"not recorded ({header}: written before sherd recorded its second "
                "implementations' checks)")
    return (f"1 split and {d['shamir'][1]} combinations ({d['shamir'][0]}), "
            f"{d['signatures'][1]} signatures ({d['signatures'][0]}), {d['fingerprints'][1]} "
            f"fingerprints and {d['fingerprints'][2]} HKDF outputs ({d['fingerprints'][0]}) agreed")


def note_fields(r):
    try:
        fields = parse_fields(r.value)
    except FieldError as e:
        raise bad_record(r.seq, r.kind, f"{r.kind}: {e}")
    out = {}
    for k, v in fields:
        if k in out:
            raise bad_record(r.seq, r.kind, f"field {k} appears twice")
        out[k] = v
    return out


def field(r, f, key):
    if key not in f:
        raise bad_record(r.seq, r.kind, f"has no {key}= field")
    return f[key]


def flag(r, f, key):
    v = field(r, f, key)
    if v not in ("true", "false"):
        raise bad_record(r.seq, r.kind, f'{key}="{v}": expected true or false')
    return v == "true"


def number(r, f, key):
    v = field(r, f, key)
    if not (v.isascii() and v.isdigit()):
        raise bad_record(r.seq, r.kind, f'{key}="{v}": expected a whole number')
    return int(v)


def check_entropy(t, plan, plan_hash_seq, root_seq):
    if t.format == 1:
        return {"basis": "not-checked"}

    def of(kind):
        out = []
        for r in t.of_kind(kind):
            if r.seq < plan_hash_seq or r.seq > root_seq:
                raise bad_record(r.seq, kind, "outside the entropy step: entropy records come "
                                 "after plan.hash and before root.fingerprint")
            out.append((r, note_fields(r)))
        return out

    sources, policies, mixers = of("entropy.source"), of("entropy.policy"), of("entropy.mixer")
    if not mixers:
        raise missing_record("no entropy.mixer record: the entropy step did not "
                             "finish")
    if len(mixers) > 1:
        raise bad_record(mixers[1][0].seq, "entropy.mixer", "a second entropy.mixer record")
    mr, mf = mixers[0]
    if field(mr, mf, "context") != MIX_CONTEXT:
        raise mismatch("mixer context", f'sherd-verify (the entropy mixer\'s context, '
                       f'"{MIX_CONTEXT}")', MIX_CONTEXT, mf["context"])
    if not any(field(r, f, "source") == "os-csprng" and flag(r, f, "healthy") for r, f in sources):
        raise missing_record("no healthy os-csprng entropy.source record: the "
                             "kernel CSPRNG is always mixed in")
    if len(policies) > 1:
        raise bad_record(policies[1][0].seq, "entropy.policy", "a second entropy.policy record")
    policy = policies[0] if policies else None
    required, min_bits, virtual_allowed = 2, 0, False
    if policy:
        pr, pf = policy
        required, min_bits = number(pr, pf, "hardware-sources"), number(pr, pf, "credited-bits")
        if required < 2 or min_bits < 320:
            raise bad_record(pr.seq, "entropy.policy", f"hardware-sources={required} "
                             f"credited-bits={min_bits}: below the ceremony's minimum of 2 "
                             "sources of 320 bits each")
        virtual_allowed = flag(pr, pf, "allow-virtual-hardware")
        if virtual_allowed != plan.allow_virtual_hardware:
            raise mismatch("allow-virtual-hardware", "plan.toml",
                           str(plan.allow_virtual_hardware).lower(), str(virtual_allowed).lower())
    counted, counted_virtual = [], []
    for r, f in sources:
        if not flag(r, f, "counted"):
            continue
        identity = field(r, f, "identity")
        problem = None
        if field(r, f, "source") == "os-csprng":
            problem = "the kernel CSPRNG is never counted as hardware"
        elif not flag(r, f, "healthy"):
            problem = "counted but not healthy"
        elif field(r, f, "commitment") == "none":
            problem = "counted but not committed to"
        elif policy and number(r, f, "credited-bits") < min_bits:
            problem = (f"counted with credited-bits={f['credited-bits']} below the policy's "
                       f"{min_bits}")
        elif policy and field(r, f, "virtual") != "no" and not virtual_allowed:
            problem = (f"counted, but virtual ({f['virtual']}) and the plan does not allow "
                       "virtual hardware")
        if problem:
            raise bad_record(r.seq, "entropy.source", f"{identity}: {problem}")
        if policy and f["virtual"] != "no":
            counted_virtual.append(identity)
        counted.append(identity)
    if len(counted) < required:
        raise missing_record(f"{len(counted)} entropy source(s) counted as "
                             f"independent hardware, {required} required")
    return {"basis": "policy" if policy else "counts-only", "counted": counted,
            "virtual_allowed": virtual_allowed, "counted_virtual": counted_virtual}


# ---------------------------------------------------------------------------------------------
# 7b. The TPM quote (docs/formats/tpm-quote.md) and the boot verdicts
#     (docs/formats/attestation.md): checks 13 and 14
# ---------------------------------------------------------------------------------------------


class QuoteInvalid(Exception):
    pass


class TpmFields:
    """Big-endian TPM structure fields, read strictly (tpm-quote.md)."""

    def __init__(self, name, data):
        self.name, self.data, self.pos = name, data, 0

    def take(self, field, n):
        if self.pos + n > len(self.data):
            raise QuoteInvalid(f"{self.name}: {field} is truncated")
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def int(self, field, n):
        return int.from_bytes(self.take(field, n), "big")

    def tpm2b(self, field):
        return self.take(field, self.int(field + " size", 2))

    def expect(self, field, n, want):
        got = self.int(field, n)
        if got != want:
            raise QuoteInvalid(f"{self.name}: {field} is {got:#x}, expected {want:#x}")

    def p256(self, field):
        v = self.tpm2b(field)
        if not 1 <= len(v) <= 32:
            raise QuoteInvalid(f"{self.name}: {field} has {len(v)} bytes, expected 1 to 32")
        return int.from_bytes(v, "big")

    def end(self):
        if self.pos != len(self.data):
            raise QuoteInvalid(f"{self.name}: {len(self.data) - self.pos} bytes after its end")


def verify_quote(attest, signature, ak_public, plan_hash, pcrs):
    """Checks a TPM2_Quote as docs/formats/tpm-quote.md "What is checked" says; returns the
    firmware version, raises QuoteInvalid."""
    r = TpmFields("TPMT_PUBLIC", ak_public)
    r.expect("type", 2, 0x0023)  # TPM_ALG_ECC
    r.expect("nameAlg", 2, 0x000B)  # SHA-256
    r.expect("objectAttributes", 4, 0x00050072)
    r.expect("authPolicy size", 2, 0)
    r.expect("symmetric", 2, 0x0010)  # NULL
    r.expect("scheme", 2, 0x0018)  # ECDSA
    r.expect("scheme hashAlg", 2, 0x000B)
    r.expect("curveID", 2, 0x0003)  # NIST P-256
    r.expect("kdf", 2, 0x0010)  # NULL
    x, y = r.p256("unique.x"), r.p256("unique.y")
    r.end()
    try:
        key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except ValueError:
        raise QuoteInvalid("TPMT_PUBLIC: (x, y) is not a point of P-256")
    name = b"\x00\x0b" + hashlib.sha256(ak_public).digest()

    r = TpmFields("TPMS_ATTEST", attest)
    r.expect("magic", 4, 0xFF544347)  # TPM_GENERATED_VALUE
    r.expect("type", 2, 0x8018)  # TPM_ST_ATTEST_QUOTE
    signer = r.tpm2b("qualifiedSigner")
    extra = r.tpm2b("extraData")
    r.take("clock", 8), r.take("resetCount", 4), r.take("restartCount", 4)
    if r.int("safe", 1) not in (0, 1):
        raise QuoteInvalid("TPMS_ATTEST: safe is not 0 or 1")
    firmware = r.int("firmwareVersion", 8)
    r.expect("pcrSelect count", 4, 1)
    r.expect("pcrSelect hash", 2, 0x000B)
    r.expect("sizeofSelect", 1, 3)
    r.expect("pcrSelect", 3, 0xFF0000)  # PCR 0-7
    pcr_digest = r.tpm2b("pcrDigest")
    r.end()

    r = TpmFields("TPMT_SIGNATURE", signature)
    r.expect("sigAlg", 2, 0x0018)  # ECDSA
    r.expect("hash", 2, 0x000B)  # SHA-256
    sig_r, sig_s = r.p256("signatureR"), r.p256("signatureS")
    r.end()

    try:
        key.verify(utils.encode_dss_signature(sig_r, sig_s), attest, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise QuoteInvalid("the signature does not verify with the attestation key")
    if signer != b"\x00\x0b" + hashlib.sha256(bytes.fromhex("4000000b") + name).digest():
        raise QuoteInvalid("qualifiedSigner is not this key as an endorsement-hierarchy primary "
                           "key")
    if extra != plan_hash:
        raise QuoteInvalid(f"the qualifying data is {extra.hex()}, expected the plan hash "
                           f"{plan_hash.hex()}")
    if pcr_digest != hashlib.sha256(b"".join(pcrs)).digest():
        raise QuoteInvalid("a PCR changed since the attestation: quoted values differ")
    return f"{firmware >> 32:#010x}.{firmware & 0xFFFFFFFF:#010x}"


class Labelled:
    """A record under the kind name its messages use (sherd-verify names every PCR record
    `tpm.pcr<N>-sha256` in its messages)."""

    def __init__(self, r, kind):
        self.seq, self.kind, self.value = r.seq, kind, r.value


def pcr_hex(r, kind):
    """A tpm.pcr<N>-sha256 record's value= as 32 bytes, or None for `none`; the record is
    returned labelled as `kind`, with its fields."""
    r = Labelled(r, kind)
    f = note_fields(r)
    v = field(r, f, "value")
    if v == "none":
        return None, f
    try:
        b = bytes.fromhex(v)
    except ValueError:
        b = b""
    if len(b) != 32 or len(v) != 64:
        raise bad_record(r.seq, kind, "value= is not 32 bytes of hex")
    return b, f


def check_quote(t, plan, plan_hash_seq, root_seq):
    """Check 13. Returns (report, outcome); outcome is ("verified"|"invalid", ak_name, why) or
    ("not-made", why), or None when no quote is recorded."""
    quotes = t.of_kind("tpm.quote")
    if not quotes:
        return ("not-recorded",), None
    if len(quotes) > 1:
        raise bad_record(quotes[1].seq, "tpm.quote", "a second tpm.quote record")
    if t.format == 1:
        return ("not-recorded",), None
    r = quotes[0]
    if r.seq < plan_hash_seq or r.seq > root_seq:
        raise bad_record(r.seq, "tpm.quote", "outside its place: the quote is made after "
                         "plan.hash and before root.fingerprint")
    f = note_fields(r)
    if "none" in f:
        return ("not-made", f["none"]), ("not-made", f["none"])

    def hexfield(key):
        v = field(r, f, key)
        try:
            return bytes.fromhex(v) if v == v.lower() and len(v) % 2 == 0 else None
        except ValueError:
            return None

    values = {}
    for key in ("attest", "signature", "ak-public"):
        values[key] = hexfield(key)
        if values[key] is None:
            raise bad_record(r.seq, "tpm.quote", f"{key}= is not hex")
    ek = field(r, f, "ek-cert")
    if ek != "none" and hexfield("ek-cert") is None:
        raise bad_record(r.seq, "tpm.quote", "ek-cert= is not hex")
    pcrs = []
    for i in range(8):
        kind = f"tpm.pcr{i}-sha256"
        recs = t.of_kind(kind)
        if not recs:
            raise missing_record(f"a TPM quote but no {kind} record to check it against")
        try:
            fields = dict(parse_fields(recs[0].value))
        except FieldError:
            fields = {}
        if "value" not in fields:
            raise missing_record(f"record {recs[0].seq}: {kind} has no value=")
        v = fields["value"]
        if v == "none":
            pcrs.append(None)
            continue
        try:
            b = bytes.fromhex(v)
        except ValueError:
            b = b""
        if len(b) != 32 or len(v) != 64:
            raise bad_record(recs[0].seq, "tpm.pcr<N>-sha256", "value= is not 32 bytes of hex")
        pcrs.append(b)
    computed = "000b" + hashlib.sha256(values["ak-public"]).hexdigest()
    if field(r, f, "ak-name") != computed:
        raise mismatch("attestation key name", "the key in tpm.quote ak-public=", computed,
                       f["ak-name"])
    if any(p is None for p in pcrs):
        why = "the attestation read no PCR values to compare the quote with"
        return ("failed", computed, why), ("invalid", computed, why)
    try:
        firmware = verify_quote(values["attest"], values["signature"], values["ak-public"],
                                bytes.fromhex(plan.hash), pcrs)
    except QuoteInvalid as e:
        return ("failed", computed, str(e)), ("invalid", computed, str(e))
    return ("verified", computed, firmware, ek != "none"), ("verified", computed, None)


HEADS_PCR4 = hashlib.sha256(
    hashlib.sha256(bytes(32) + hashlib.sha256(b"usb").digest()).digest()
    + hashlib.sha256(b"generic").digest()
).digest()
HEADS_VALUES = {0: bytes(32), 1: bytes(32), 3: bytes(32), 4: HEADS_PCR4}  # heads.md


def encode_fields(pairs):
    def enc(v):
        if is_bare(v):
            return v
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return " ".join(f"{k}={enc(v)}" for k, v in pairs)


def check_boot(t, plan, outcome, root_seq):
    """Check 14: the verdicts recomputed (docs/formats/attestation.md). Returns the report
    lines' data, or None when no attest.verdicts is recorded."""
    verdicts, deviations = t.of_kind("attest.verdicts"), t.of_kind("attest.deviation")
    if not verdicts:
        if deviations:
            raise bad_record(deviations[0].seq, "attest.deviation",
                             "a deviation without attest.verdicts")
        return None
    if len(verdicts) > 1:
        raise bad_record(verdicts[1].seq, "attest.verdicts", "a second attest.verdicts record")
    r = verdicts[0]
    quotes = t.of_kind("tpm.quote")
    if outcome is None or not quotes:
        raise bad_record(r.seq, "attest.verdicts", "no tpm.quote record before it: the verdicts "
                         "judge the quote")
    if r.seq != quotes[0].seq + 1 or r.seq > root_seq:
        raise bad_record(r.seq, "attest.verdicts", "outside its place: right after tpm.quote, "
                         "before root.fingerprint")
    readings = []
    for i in range(8):
        kind = f"tpm.pcr{i}-sha256"
        recs = t.of_kind(kind)
        if not recs:
            raise missing_record(f"no {kind} record")
        value, f = pcr_hex(recs[0], "tpm.pcr<N>-sha256")
        verdict = field(Labelled(recs[0], "tpm.pcr<N>-sha256"), f, "verdict")
        if verdict not in ("PASS", "FAIL", "UNKNOWN"):
            raise bad_record(recs[0].seq, "tpm.pcr<N>-sha256",
                             "verdict= is not PASS, FAIL or UNKNOWN")
        heads = HEADS_VALUES.get(i)
        if (verdict == "PASS") != (value is not None and value == heads):
            raise bad_record(recs[0].seq, "tpm.pcr<N>-sha256", f"verdict={verdict}, but by "
                             f"Heads' rules PCR{i} is PASS exactly when it holds Heads' value"
                             + (" and it has none (board-specific)" if heads is None else ""))
        readings.append((value, verdict))
    m = plan.machine
    items = []  # (item, verdict, value or None)
    for i, (value, verdict) in enumerate(readings):
        recorded = m.get(f"pcr{i}") if m else None
        if recorded is not None:
            if value is None:
                verdict = "UNKNOWN"
            else:
                verdict = "PASS" if value == bytes.fromhex(recorded) else "FAIL"
        items.append((f"pcr{i}", verdict, value.hex() if value is not None else "none"))
    kind = outcome[0]
    items.append(("quote", {"verified": "PASS", "invalid": "FAIL", "not-made": "UNKNOWN"}[kind],
                  None))
    if m and "quote_key" in m:
        if kind == "not-made":
            items.append(("quote-key", "UNKNOWN", None))
        else:
            same = outcome[1] == m["quote_key"].lower()
            items.append(("quote-key", "PASS" if same else "FAIL", outcome[1]))
    want = encode_fields(([("machine", m["name"])] if m else [])
                         + [(item, v) for item, v, _ in items])
    if r.value != want:
        raise mismatch("boot verdicts", "the PCR values recorded at the attestation, the plan's "
                       "[machine] table and the quote", want, r.value)
    open_items = [(item, v, val) for item, v, val in items if v != "PASS"]
    deviation = None
    if not open_items:
        if deviations:
            raise bad_record(deviations[0].seq, "attest.deviation",
                             "a deviation, but every item is PASS")
    elif not deviations:
        raise missing_record(f"{' '.join(i for i, _, _ in open_items)} not PASS and no "
                             "attest.deviation records why the ceremony went on")
    elif len(deviations) > 1:
        raise bad_record(deviations[1].seq, "attest.deviation", "a second attest.deviation record")
    else:
        d = deviations[0]
        if d.seq != r.seq + 1:
            raise bad_record(d.seq, "attest.deviation",
                             "outside its place: right after attest.verdicts")
        f = note_fields(d)
        reason = field(d, f, "reason")
        trimmed = reason.strip()
        if not all(0x20 <= ord(c) <= 0x7E for c in trimmed):
            raise bad_record(d.seq, "attest.deviation",
                             "only letters, digits, punctuation and spaces can be recorded")
        if not 10 <= len(trimmed) <= 200:
            raise bad_record(d.seq, "attest.deviation", f"the reason has {len(trimmed)} "
                             "characters: type 10 to 200 saying why the ceremony may go on")
        if trimmed != reason:
            raise bad_record(d.seq, "attest.deviation",
                             "the reason has leading or trailing spaces")
        pairs = []
        for item, v, val in open_items:
            pairs.append((item, v))
            if val is not None:
                pairs.append((f"{item}-value", val))
        want = encode_fields(pairs + [("reason", reason)])
        if d.value != want:
            raise mismatch("deviation", "the items not PASS, with their values", want, d.value)
        deviation = ([i for i, _, _ in open_items], reason)
    return {"machine": m["name"] if m else None, "items": items, "deviation": deviation}


def boot_lines(boot):
    if boot is None:
        return ["not recorded (a transcript from before attest.verdicts)"]
    if boot["machine"]:
        basis = f"judged against the values the plan records for {boot['machine']}"
    else:
        basis = "judged by Heads' rules only (the plan records no laptop)"
    passed = [i for i, v, _ in boot["items"] if v == "PASS"]
    open_items = [f"{i} {v}" for i, v, _ in boot["items"] if v != "PASS"]
    lines = [f"{basis}; recomputed, as recorded", f"PASS: {' '.join(passed) or 'none'}"]
    if open_items:
        lines.append(f"not PASS: {', '.join(open_items)}")
    if boot["deviation"]:
        items, reason = boot["deviation"]
        lines.append(f'DEVIATION recorded for {" ".join(items)}: "{reason}"')
    else:
        lines.append("no deviation")
    return lines


def check_witness_signatures(get, plan, transcript):
    report = {"signed": [], "not_signed": [],
              "certificates_given": any(w["certs"] for w in plan.witnesses)}
    for w in plan.witnesses:
        k, name = w["index"], w["name"]
        path = f"witness-signatures/{k}.sig"
        try:
            data = get(path)
        except Failure as e:
            if not getattr(e, "not_found", False):
                raise
            if plan.require_witness_signatures:
                raise Failure("missing-witness-signature",
                              f"{path}: missing: plan.toml sets require_witness_signatures, and "
                              f"witness {k} ({name}) did not sign")
            report["not_signed"].append(name)
            continue
        if not w["certs"]:
            raise invalid(path, f"witness {k} ({name}) has no certificate in plan.toml: a "
                          "signature by them cannot be checked")
        keys = [key for c in w["certs"] for key in c.cert.signing_keys(plan.time)]
        try:
            if not data or not data[0] & 0x80:
                raise PgpError("not a binary OpenPGP packet (ASCII armor or other data)")
            verify_data_signature(data, transcript, keys, plan.time,
                                  f"a live signing key of witness {k}'s certificates")
        except PgpError as e:
            raise invalid(path, f"not a good signature of witness {k} ({name}) over "
                          f"transcript.txt: {e}")
        report["signed"].append(name)
    return report


def witness_line(w):
    if not w["certificates_given"]:
        return "witness signatures: none (the plan gives no witness certificates)"
    total = len(w["signed"]) + len(w["not_signed"])
    line = f"signed by {len(w['signed'])} of {total} witnesses"
    if w["signed"]:
        line += ": " + ", ".join(w["signed"])
    if w["not_signed"]:
        line += "; not signed: " + ", ".join(w["not_signed"])
    return line


# =============================================================================================
# 8. Shares: envelopes (docs/formats/share-envelope.md), GF(2^8) with 0x11b, recombination,
#    and the root key derivation (docs/formats/keys.md).
# =============================================================================================


def decode_envelope(data, where):
    pos = 0

    def take(n, name):
        nonlocal pos
        if pos + n > len(data):
            raise Failure("share", f"{where}: truncated in {name}")
        out = data[pos : pos + n]
        pos += n
        return out

    if len(data) < 8 or data[:8] != b"SHERDENV":
        raise Failure("share", f"{where}: not a sherd share envelope (bad magic)")
    pos = 8
    if take(1, "version")[0] != 1:
        raise Failure("share", f"{where}: envelope version {data[8]} is not supported")
    id_len = take(1, "ceremony_id length")[0]
    try:
        cid = take(id_len, "ceremony_id").decode()
        check_id(cid)
    except (UnicodeDecodeError, ValueError) as e:
        raise Failure("share", f"{where}: ceremony_id: {e}")
    index, threshold, count = take(1, "index")[0], take(1, "threshold")[0], take(1, "count")[0]
    if not 1 <= index <= count:
        raise Failure("share", f"{where}: index {index} is not in 1..={count}")
    if not 1 <= threshold <= count:
        raise Failure("share", f"{where}: threshold {threshold} is not in 1..={count}")
    key_time = struct.unpack(">I", take(4, "key_time"))[0]
    plan_hash, commitment = take(32, "plan_hash").hex(), take(32, "commitment")
    fpr_len = take(1, "root_fingerprint length")[0]
    if fpr_len not in (20, 32):
        raise Failure("share", f"{where}: root_fingerprint length {fpr_len}")
    fpr = take(fpr_len, "root_fingerprint").hex().upper()
    share_len = take(1, "share length")[0]
    if share_len < 2:
        raise Failure("share", f"{where}: share shorter than x byte plus one y byte")
    share = take(share_len, "share")
    if share[0] != index:
        raise Failure("share", f"{where}: share x = {share[0]} but index = {index}")
    if pos != len(data):
        raise Failure("share", f"{where}: {len(data) - pos} trailing byte(s)")
    return {"where": where, "ceremony_id": cid, "index": index, "threshold": threshold,
            "count": count, "key_time": key_time, "plan_hash": plan_hash,
            "commitment": commitment, "root_fingerprint": fpr, "share": share}


def gf_mul(a, b):
    """Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (0x11b, the AES field)."""
    p = 0
    while b:
        if b & 1:
            p ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11B
        b >>= 1
    return p


def gf_inv(a):
    """a^254 = a^-1 (a != 0)."""
    r, e = 1, 254
    while e:
        if e & 1:
            r = gf_mul(r, a)
        a = gf_mul(a, a)
        e >>= 1
    return r


def interpolate_at_zero(points):
    """Lagrange interpolation at x = 0 of byte-wise points [(x, y bytes)]."""
    out = bytearray(len(points[0][1]))
    for j, (xj, yj) in enumerate(points):
        num, den = 1, 1
        for m, (xm, _) in enumerate(points):
            if m != j:
                num = gf_mul(num, xm)  # (0 - xm) = xm in characteristic 2
                den = gf_mul(den, xj ^ xm)
        lj = gf_mul(num, gf_inv(den))
        for i, b in enumerate(yj):
            out[i] ^= gf_mul(lj, b)
    return bytes(out)


def hkdf32(secret, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"sherd/v1", info=info).derive(secret)


def mpi(b):
    return struct.pack(">H", (len(b) - 1) * 8 + b[0].bit_length()) + b


def derive_root(secret, key_time):
    """The root certificate's primary and subkey fingerprints and public keys, from the
    secret and the key time (docs/formats/keys.md)."""
    raw = lambda k: k.public_key().public_bytes(  # noqa: E731
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ed = raw(Ed25519PrivateKey.from_private_bytes(
        hkdf32(secret, b"sherd/v1/root/primary/ed25519")))
    sc = bytearray(hkdf32(secret, b"sherd/v1/root/subkey/cv25519"))
    sc[0] &= 248
    sc[31] &= 127
    sc[31] |= 64
    x = raw(X25519PrivateKey.from_private_bytes(bytes(sc)))
    tb = struct.pack(">I", key_time)
    primary = b"\x04" + tb + b"\x16" + bytes([len(OID_ED25519)]) + OID_ED25519 + mpi(b"\x40" + ed)
    sub = (b"\x04" + tb + b"\x12" + bytes([len(OID_CV25519)]) + OID_CV25519 + mpi(b"\x40" + x)
           + bytes([3, 1, 8, 7]))
    return Key(primary), Key(sub)


def commitment(secret, ceremony_id):
    return hmac.new(secret, b"sherd/v1/commitment\x00" + ceremony_id.encode(),
                    hashlib.sha256).digest()


def refuse_foreign(envelopes, ceremony_id, root_fpr):
    for e in envelopes:
        if e["ceremony_id"] != ceremony_id or e["root_fingerprint"] != root_fpr:
            raise Failure("share", f"{e['where']}: a foreign share (ceremony {e['ceremony_id']}, "
                          f"root {e['root_fingerprint']}; expected {ceremony_id}, {root_fpr})")


def recombine(envelopes, ceremony_id, root_fpr, root_cert=None):
    """The checks of share-envelope.md "Opening and recombining", in order. Returns the
    number of shares used and the subset that matched; raises Failure("share", ...)."""
    refuse_foreign(envelopes, ceremony_id, root_fpr)
    for name in ("threshold", "count", "key_time", "plan_hash", "commitment"):
        values = [e[name] for e in envelopes]
        majority = max(values, key=values.count)  # ties: the first share's value
        for e in envelopes:
            if e[name] != majority:
                raise Failure("share", f"{e['where']}: {name} differs from the other shares")
    by_index = {}
    for e in envelopes:
        if e["index"] in by_index:
            same = by_index[e["index"]]["share"] == e["share"]
            raise Failure("share", f"{e['where']}: share {e['index']} given twice"
                          + (" (identical copies)" if same else " (conflicting: one is forged)"))
        by_index[e["index"]] = e
    m = envelopes[0]["threshold"]
    if len(envelopes) < m:
        raise Failure("share", f"{len(envelopes)} share(s) given, {m} needed")
    want = envelopes[0]["commitment"]
    found = None
    for n, subset in enumerate(itertools.combinations(envelopes, m)):
        if n >= 10_000:
            break
        secret = interpolate_at_zero([(e["index"], e["share"][1:]) for e in subset])
        if hmac.compare_digest(commitment(secret, ceremony_id), want):
            found = (subset, secret)
            break
    if found is None:
        raise Failure("share", "no subset of the shares recombines to the committed secret"
                      + (": bring one more share" if len(envelopes) == m else ""))
    subset, secret = found
    # Every further share must be a point of the same polynomial.
    for e in envelopes:
        if e in subset:
            continue
        points = [(x["index"], x["share"][1:]) for x in subset[1:]] + [(e["index"], e["share"][1:])]
        if interpolate_at_zero(points) != secret:
            raise Failure("share", f"{e['where']}: share {e['index']} does not agree with the "
                          "others (corrupt or forged)")
    primary, sub = derive_root(secret, envelopes[0]["key_time"])
    if primary.fingerprint != root_fpr:
        raise Failure("share", f"the recombined secret derives root fingerprint "
                      f"{primary.fingerprint}, expected {root_fpr}")
    if root_cert is not None:
        if root_cert.primary.body != primary.body:
            raise Failure("share", "the derived primary key differs from root-cert.asc's")
        if not root_cert.subkeys or root_cert.subkeys[0][0].body != sub.body:
            raise Failure("share", "the derived encryption subkey differs from root-cert.asc's")
    return {"used": [e["index"] for e in subset], "subkey": sub.fingerprint}


def check_shares(report, share_files):
    envelopes = []
    for path in share_files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise Failure("share", f"{path}: cannot read: {e}")
        envelopes.append(decode_envelope(data, path))
    shards = report["shards"]
    refuse_foreign(envelopes, report["ceremony_id"], report["root_fingerprint"])
    for e in envelopes:
        for name, expected in [("plan_hash", report["plan_hash"]),
                               ("count", report["count"]), ("threshold", report["threshold"]),
                               ("key_time", shards.key_time)]:
            if e[name] != expected:
                raise Failure("share", f"{e['where']}: {name} {e[name]}, the folder says "
                              f"{expected}")
    return recombine(envelopes, report["ceremony_id"], report["root_fingerprint"],
                     report["root_cert"])


# =============================================================================================
# 9. Recovery folders (docs/formats/recovery.md) and their request (docs/formats/request.md)
# =============================================================================================

REQUEST_FORMAT = "sherd-request/1"
OPERATIONS = ("sign", "certify", "prove-quorum", "reshare", "replace-card")
MAX_REQUEST_BYTES = 1 << 20
# The request time's and expiry's rules (those of the plan's time).
OPENPGP_TIME_END = 2**32
YEAR_2020 = 1_577_836_800


def request_time(field, value, spelled):
    """A request's date-time (`time`, `certify.expiry`) as Unix seconds: a full date and time
    in UTC written with a trailing Z, whole seconds, 2020-01-01 up to the end of 32-bit
    OpenPGP time. Raises ValueError."""
    shown = spelled or (value.isoformat() if hasattr(value, "isoformat") else repr(value))

    def bad(reason):
        return ValueError(f"invalid {field} {shown}: {reason}")

    if not isinstance(value, datetime.datetime):
        if isinstance(value, (datetime.date, datetime.time)):
            raise bad("needs a full date and time, e.g. 2026-11-24T09:00:00Z")
        raise ValueError(f"{field}: {value!r} is not a TOML date and time")
    if value.tzinfo is None or value.utcoffset() != datetime.timedelta(0) or \
            spelled is None or spelled[-1] not in "Zz":
        raise bad("must be in UTC, written with a trailing Z")
    fraction = re.search(r"\.(\d+)", spelled)
    if value.microsecond or (fraction and fraction.group(1).strip("0")):
        raise bad("fractions of a second are not allowed (OpenPGP times are whole seconds)")
    secs = int(value.timestamp())
    if secs < YEAR_2020:
        raise bad("must be 2020-01-01 or later")
    if secs >= OPENPGP_TIME_END:
        raise bad("must be before 2106-02-07 (OpenPGP timestamps are 32-bit)")
    return secs


class Request:
    """request.toml (docs/formats/request.md): read with every rule the document gives, and
    its canonical hash. Raises ValueError naming the field at fault (this verifier's wording,
    in the order of the document's rules, not sherd's messages)."""

    def __init__(self, text):
        if len(text.encode()) > MAX_REQUEST_BYTES:
            raise ValueError(f"the request is {len(text.encode())} bytes; at most "
                             f"{MAX_REQUEST_BYTES} are read")
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"the request is not valid TOML: {e}")
        only_keys(raw, ["format", "ceremony_id", "root_fingerprint", "time", *OPERATIONS],
                  "the request")
        for key, typ in [("format", str), ("ceremony_id", str), ("root_fingerprint", str),
                         ("time", object)]:
            if key not in raw:
                raise ValueError(f"the request has no {key}")
            if not isinstance(raw[key], typ):
                raise ValueError(f"{key}: must be a string")
        for op in OPERATIONS:
            if op in raw and not isinstance(raw[op], dict):
                raise ValueError(f"{op}: must be a table")
        if raw["format"] != REQUEST_FORMAT:
            raise ValueError(f"unsupported request format {rq(raw['format'])}: this verifier "
                             f"reads {rq(REQUEST_FORMAT)}")
        self.ceremony_id = raw["ceremony_id"]
        check_id(self.ceremony_id)
        fpr = raw["root_fingerprint"]
        if len(fpr) not in (40, 64) or not all(c in "0123456789abcdefABCDEF" for c in fpr):
            raise ValueError(f"invalid root_fingerprint {rq(fpr)}: must be 40 or 64 hex "
                             "digits, without spaces")
        self.root_fingerprint = fpr.upper()
        self.time = request_time("time", raw["time"], spelled_datetime(text, None, "time"))
        present = [op for op in OPERATIONS if op in raw]
        if not present:
            raise ValueError("the request names no operation: add one of the tables [sign], "
                             "[certify], [prove-quorum], [reshare], [replace-card]")
        if len(present) > 1:
            raise ValueError(f"the request names {len(present)} operations "
                             f"({', '.join(present)}): a request names exactly one")
        self.operation = present[0]
        table = raw[self.operation]
        lines = [REQUEST_FORMAT, f"ceremony_id={self.ceremony_id}",
                 f"root_fingerprint={self.root_fingerprint}", f"time={self.time}",
                 f"operation={self.operation}"]
        if self.operation == "sign":
            lines += self._sign(table)
        elif self.operation == "certify":
            lines += self._certify(table, text)
        elif self.operation == "prove-quorum":
            only_keys(table, ["challenge"], "prove-quorum")
            self.challenge = table.get("challenge")
            self._challenge(self.challenge)
            lines.append(f"challenge={self.challenge}")
        elif self.operation == "reshare":
            lines += self._reshare(table, raw)
        else:
            only_keys(table, ["holder", "cards"], "replace-card")
            holder, cards = table.get("holder"), table.get("cards")
            if type(holder) is not int or not 1 <= holder <= 255:
                raise ValueError(f"replace-card.holder = {holder!r} is out of range 1..=255")
            if type(cards) is not int or not 1 <= cards <= 8:
                raise ValueError(f"replace-card.cards = {cards!r} is out of range 1..=8")
            self.holder, self.cards = holder, cards
            lines += [f"holder={holder}", f"cards={cards}"]
        self.canonical = "".join(line + "\n" for line in lines)
        digest = hashlib.sha256(self.canonical.encode()).digest()
        self.hash, self.words = digest.hex(), pgp_words(digest)

    def _sign(self, table):
        only_keys(table, ["file"], "sign")
        files = table.get("file", [])
        if not isinstance(files, list) or not 1 <= len(files) <= 255:
            raise ValueError(f"sign.file: {len(files) if isinstance(files, list) else files!r}"
                             " entries, expected 1..=255")
        self.files, seen = [], {}
        for i, f in enumerate(files):
            where = f"sign.file[{i + 1}]"
            if not isinstance(f, dict):
                raise ValueError(f"{where}: must be a table")
            only_keys(f, ["name", "sha256"], where)
            name, sha = f.get("name"), f.get("sha256")
            if not isinstance(name, str) or not isinstance(sha, str):
                raise ValueError(f"{where}: name and sha256 are strings, both needed")
            reason = None
            if not 1 <= len(name.encode()) <= 255:
                reason = "must be 1 to 255 bytes"
            elif "/" in name or "\\" in name:
                reason = "must be a plain file name, without '/' or '\\'"
            elif any(is_control(c) for c in name):
                reason = "control characters are not allowed"
            elif name.strip() != name:
                reason = "leading or trailing spaces are not allowed"
            elif name.startswith("."):
                reason = "must not start with '.'"
            if reason:
                raise ValueError(f"{where}.name: invalid file name {rq(name)}: {reason}")
            if name in seen:
                raise ValueError(f"sign.file: {rq(name)} is listed twice (files {seen[name]} "
                                 f"and {i + 1})")
            seen[name] = i + 1
            if not is_hash32(sha):
                raise ValueError(f"{where}.sha256: {rq(sha)} is not a SHA-256 (64 lower-case "
                                 "hex digits)")
            self.files.append({"name": name, "sha256": sha})
        return [f"files={len(self.files)}"] + [f"file={f['sha256']}\t{f['name']}"
                                                for f in self.files]

    def _certify(self, table, text):
        only_keys(table, ["cert", "user_ids", "expiry"], "certify")
        armored, uids = table.get("cert"), table.get("user_ids")
        if not isinstance(armored, str):
            raise ValueError("certify.cert: one ASCII-armored certificate (a string) is needed")
        if not isinstance(uids, list) or not all(isinstance(u, str) for u in uids):
            raise ValueError("certify.user_ids: a list of strings is needed")
        try:
            binary = dearmor(armored, "PGP PUBLIC KEY BLOCK")
            cert = read_cert(binary)
        except PgpError as e:
            if str(e) == "contains secret key material":
                raise ValueError("certify.cert: contains secret key material; put only the "
                                 "public certificate in the request")
            raise ValueError(f"certify.cert: cannot be read: {e}")
        fpr = cert.fingerprint
        if fpr == self.root_fingerprint:
            raise ValueError(f"certify.cert is the root certificate {fpr} itself")
        try:
            cert.primary_binding(self.time)
        except PgpError as e:
            raise ValueError(f"certify.cert {fpr}: not usable at the request time: {e}")
        if not 1 <= len(uids) <= 32:
            raise ValueError(f"certify.user_ids: {len(uids)} entries, expected 1..=32")
        valid = cert.valid_user_ids(self.time)
        for i, u in enumerate(uids):
            def bad(reason):
                return ValueError(f"certify.user_ids[{i + 1}]: user ID {rq(u)}: {reason}")
            if not 1 <= len(u.encode()) <= 1024:
                raise bad("must be 1 to 1024 bytes")
            if any(is_control(c) for c in u):
                raise bad("control characters are not allowed")
            if u.encode() not in valid:
                raise bad("not a valid, unrevoked user ID of the certificate at the request "
                          "time")
            if u in uids[:i]:
                raise ValueError(f"certify.user_ids: {rq(u)} is listed twice")
        expiry = None
        if "expiry" in table:
            expiry = request_time("certify.expiry", table["expiry"],
                                  spelled_datetime(text, "certify", "expiry"))
            if expiry <= self.time:
                raise ValueError(f"certify.expiry {rfc3339(expiry)} is not after the request "
                                 f"time {rfc3339(self.time)}")
        self.cert, self.cert_sha256, self.user_ids, self.expiry = \
            cert, hashlib.sha256(binary).hexdigest(), uids, expiry
        lines = [f"cert={fpr}\t{self.cert_sha256}", f"user_ids={len(uids)}"]
        lines += [f"user_id={u}" for u in uids]
        if expiry is not None:
            lines.append(f"expiry={expiry}")
        return lines

    @staticmethod
    def _challenge(c):
        if not isinstance(c, str):
            raise ValueError("prove-quorum.challenge: one line of text (a string) is needed")
        if not 1 <= len(c.encode()) <= 512:
            raise ValueError("prove-quorum.challenge: must be 1 to 512 bytes")
        if any(is_control(ch) for ch in c):
            raise ValueError("prove-quorum.challenge: control characters (a line break "
                             "included) are not allowed")
        if c.strip() != c:
            raise ValueError("prove-quorum.challenge: leading or trailing spaces are not "
                             "allowed")

    def _reshare(self, table, raw):
        # The new plan: the [reshare] table's plan fields with the request's ceremony id and
        # time (already checked for its trailing Z), checked as a plan is.
        only_keys(table, ["threshold", "allow_threshold_one", "allow_virtual_hardware",
                          "require_witness_signatures", "holder", "witness", "policy"],
                  "reshare")
        if "threshold" not in table:
            raise ValueError("reshare: threshold is needed")
        plan_raw = dict(table, format="sherd-plan/1", ceremony_id=self.ceremony_id,
                        time=raw["time"])
        try:
            self.plan = Plan(None, raw=plan_raw)
        except ValueError as e:
            raise ValueError(f"reshare: {e}")
        return [f"plan={self.plan.hash}"]


def is_recovery_transcript(data):
    """Whether transcript.txt's bytes are a recovery transcript's: a transcript whose first
    record is recovery.generation."""
    try:
        t = Transcript(data)
    except Failure:
        return False
    return bool(t.records) and t.records[0].kind == "recovery.generation"


def _usize(v):
    n = dec(v)
    return n if n is not None and n < 2**64 else None


def _u32(v):
    n = dec(v)
    return n if n is not None and n < 2**32 else None


WHAT[_usize] = WHAT[_u32] = "a decimal number"

# The recovery transcript's own kinds and their fields, in order (recovery.md, "The
# transcript"); output.file, ceremony.end and witness.confirm are the core's.
RECOVERY_FIELDS = {
    "recovery.generation": [("ceremony", _text), ("transcript", _hash), ("root", _fpr)],
    "recovery.request": [("hash", _hash), ("file-sha256", _hash), ("operation", _text),
                         ("time", _u32)],
    "recovery.policy": [("policy", _text), ("needed", _u8), ("approvals", _usize)],
    "recovery.approval": [("approver", _text), ("cert", _fpr), ("key", _fpr),
                          ("file-sha256", _hash)],
    "recovery.share": [("holder", _u8), ("name", _text), ("envelope", _hash), ("pins", _hash),
                       ("reader", _text), ("reader-name", _text), ("personal", _fpr),
                       ("personal-card", _text), ("card", _text)],
    "recovery.recombined": [("holders", _text), ("threshold", _u8), ("commitment", _ok),
                            ("root", _fpr), ("self-test", _ok)],
    "recovery.signed": [("name", _text), ("sha256", _hash), ("size", _usize),
                        ("signature", _text)],
    "recovery.quorum": [("challenge-sha256", _hash), ("signature", _text)],
    "recovery.certified": [("cert", _fpr), ("user-id", _text), ("expiry", _u32)],
    "recovery.replaced": [("holder", _u8), ("transcript", _hash), ("location", _fpr),
                          ("envelope", _hash), ("pins", _hash)],
    "recovery.rebuilt": [("holder", _u8), ("name", _text), ("from", _text), ("second", _text),
                         ("checked", _usize)],
    "recovery.location": [("holder", _u8), ("fingerprint", _fpr), ("subkey", _fpr),
                          ("replaces", _fpr)],
    "recovery.sealed": [("holder", _u8), ("sha256", _hash), ("replaces", _hash)],
    "recovery.card": [("holder", _u8), ("card", _u8), ("serial", _text), ("location", _fpr),
                      ("test-decrypt", _ok)],
    "recovery.pins": [("holder", _u8), ("sha256", _hash), ("recipients", _fprs),
                      ("replaces", _hash)],
    "recovery.reshared": [("transcript", _hash), ("plan", _hash), ("threshold", _u8),
                          ("holders", _u8)],
    "recovery.reshare": [("plan", _hash), ("threshold", _u8), ("holders", _u8),
                         ("witnesses", _usize)],
    "recovery.new-location": [("holder", _u8), ("name", _text), ("fingerprint", _fpr),
                              ("subkey", _fpr)],
    "recovery.new-sealed": [("holder", _u8), ("sha256", _hash)],
    "recovery.new-subsets": [("checked", _usize), ("total", _total), ("policy", _policy),
                             ("second", _text), ("combinations", _usize)],
    "recovery.old-shares": [("plan", _hash), ("threshold", _u8), ("holders", _u8)],
    "recovery.new-card": [("holder", _u8), ("card", _u8), ("serial", _text),
                          ("location", _fpr), ("test-decrypt", _ok)],
    "recovery.new-pins": [("holder", _u8), ("sha256", _hash), ("recipients", _fprs)],
    "output.file": [("path", _text), ("size", _usize), ("sha256", _hash)],
    "ceremony.end": [("files", _usize)],
    "witness.confirm": CORE_FIELDS["witness.confirm"],
}
# Each kind's place in the recovery's order (the table of recovery.md); a screen's record
# (witness.confirm, a caller's kind) has none and may come only before recovery.recombined.
RECOVERY_PLACE = {
    "recovery.generation": 0, "recovery.replaced": 1, "recovery.request": 2,
    "recovery.policy": 3, "recovery.approval": 4, "recovery.share": 5, "recovery.recombined": 6,
    "recovery.signed": 7, "recovery.quorum": 7, "recovery.certified": 7, "recovery.rebuilt": 7,
    "recovery.location": 8, "recovery.sealed": 9, "recovery.card": 10, "recovery.pins": 11,
    "recovery.reshared": 1, "recovery.reshare": 7, "recovery.new-location": 8,
    "recovery.new-sealed": 9, "recovery.new-subsets": 10, "recovery.old-shares": 11,
    "recovery.new-card": 12, "recovery.new-pins": 13,
    "output.file": 14, "ceremony.end": 15,
}
RECOMBINED_PLACE = RECOVERY_PLACE["recovery.recombined"]
# The replace-card recovery's own kinds, in its order (recovery.md, "Its records").
REPLACE_CARD_KINDS = ("recovery.rebuilt", "recovery.location", "recovery.sealed",
                      "recovery.card", "recovery.pins")
# The reshare recovery's own kinds, in its order (recovery.md, "reshare", "Its records").
RESHARE_KINDS = ("recovery.reshare", "recovery.new-location", "recovery.new-sealed",
                 "recovery.new-subsets", "recovery.old-shares", "recovery.new-card",
                 "recovery.new-pins")
CHALLENGE, CHALLENGE_SIG, CERTIFIED = ("quorum/challenge.txt", "quorum/challenge.txt.sig",
                                       "certified/cert.asc")
SIGNATURE_TYPES = {0x00: "Binary", 0x01: "Text", 0x02: "Standalone",
                   0x10: "GenericCertification", 0x11: "PersonaCertification",
                   0x12: "CasualCertification", 0x13: "PositiveCertification",
                   0x18: "SubkeyBinding", 0x19: "PrimaryKeyBinding", 0x1F: "DirectKey",
                   0x20: "KeyRevocation", 0x28: "SubkeyRevocation",
                   0x30: "CertificationRevocation", 0x40: "Timestamp",
                   0x50: "Confirmation"}


def signature_path(position, name):
    """Where a sign recovery puts the signature of the request's file `name` at 1-based
    `position` (recovery.md, "The folder")."""
    if not name.startswith(".") and all(c.isascii() and (c.isalnum() or c in "._-")
                                        for c in name):
        return f"signatures/{name}.sig"
    return f"signatures/by-position/{position:03d}.sig"


def path_stays_inside(path):
    return (path != "" and not path.startswith("/") and "\\" not in path
            and not any(is_control(c) for c in path)
            and all(c not in ("", ".", "..") for c in path.split("/")))


def os_error(e):
    return f"{e.strerror} (os error {e.errno})"


def recovery_reader(folder):
    """Reads a file of the recovery folder by the path the transcript names: a path that
    could leave the folder, or one through a symbolic link, is refused. A missing file
    raises a Failure whose `not_found` is True."""

    def read(path):
        if not path_stays_inside(path):
            raise unreadable(path, "path leaves the folder")
        at = folder
        try:
            for c in path.split("/"):
                at = os.path.join(at, c)
                if stat.S_ISLNK(os.lstat(at).st_mode):
                    raise unreadable(path, "a symbolic link: the folder's files are plain files")
            with open(at, "rb") as f:
                return f.read()
        except OSError as e:
            failure = unreadable(path, os_error(e))
            failure.not_found = isinstance(e, FileNotFoundError)
            raise failure

    return read


def list_folder(folder):
    """Every file of the folder, recursively, as sorted '/'-separated paths; a symbolic link
    or any entry that is neither a plain file nor a folder is refused."""
    out = []

    def walk(d, prefix):
        for name in os.listdir(d):
            rel = f"{prefix}/{name}" if prefix else name
            mode = os.lstat(os.path.join(d, name)).st_mode
            if stat.S_ISDIR(mode):
                walk(os.path.join(d, name), rel)
            elif stat.S_ISREG(mode):
                out.append(rel)
            else:
                raise Failure("unlistable", f"the recovery folder: cannot list its files: "
                              f"{rel}: not a plain file or folder (a link?)")

    try:
        walk(folder, "")
    except OSError as e:
        raise Failure("unlistable", f"the recovery folder: cannot list its files: "
                      f"{os_error(e)}")
    return sorted(out)


def read_signature(data):
    """One signature packet, armored (PGP SIGNATURE) or binary; raises PgpError."""
    if data.lstrip().startswith(b"-----BEGIN "):
        data = dearmor(data, "PGP SIGNATURE")
    return one_signature_packet(data)


def root_signature_shape(sig, root_fpr):
    """None when `sig` (a Signature) is a binary-document signature naming the root key as
    its issuer, else why not, worded as sherd-verify words it (Sequoia lists issuer
    fingerprints before key IDs)."""
    if sig.type != 0x00:
        typ = SIGNATURE_TYPES.get(sig.type, f"Unknown({sig.type})")
        return f"a signature of type {typ}, not a binary document signature"
    fprs, keyids = [], []
    for t, _, v in sig.hashed + sig.unhashed:
        if t == SUB_ISSUER_FPR and len(v) in (21, 33):
            fprs.append(v[1:].hex().upper())
        elif t == SUB_ISSUER and len(v) == 8:
            keyids.append(v.hex().upper())
    if root_fpr in fprs or root_fpr[-16:] in keyids:
        return None
    named = fprs or keyids
    by = f"key {', '.join(named)}" if named else "an unnamed key"
    return f"made by {by}, not by the root key {root_fpr}"


def check_root_signature(sig_bytes, data, root, changed="the file"):
    """A detached binary-document signature by the root primary key over data: (the
    Signature, None) when good, else (the Signature or None, why not). As in sherd-verify, a
    signature that verifies is good whatever issuer it names; one that does not is reported
    by the issuer it names, else as made over other bytes (`changed`: what was changed)."""
    try:
        sig = read_signature(sig_bytes)
    except PgpError as e:
        return None, f"not an OpenPGP signature: {e}"
    if sig.type != 0x00:
        return sig, root_signature_shape(sig, root.fingerprint)
    why = sig.check(root, data)
    if why is None:
        return sig, None
    shape = root_signature_shape(sig, root.fingerprint)
    if shape is not None:
        return sig, shape
    return sig, (f"made by the root key, but not over these bytes: {changed} was changed after "
                 f"it was signed ({why})")


def recovery_records(t):
    """Each record of a recovery transcript typed: record 1 recovery.generation, every kind
    one of recovery.md's with exactly its fields, or a screen's record (witness.confirm, a
    caller's kind that is neither the core's nor recovery.*). Returns [(seq, kind, fields or
    None)]; raises Failure naming the record."""
    first = t.records[0].kind if t.records else ""
    if first != "recovery.generation":
        raise transcript_error("transcript.txt", f"record 1 is {rq(first)}, not "
                               "recovery.generation: this is not a recovery transcript")
    out = []
    for r in t.records:
        try:
            if r.kind in RECOVERY_FIELDS:
                out.append((r.seq, r.kind, parse_core(r.kind, r.value, RECOVERY_FIELDS[r.kind])))
            elif not r.kind.startswith("recovery.") and r.kind not in CORE_FIELDS:
                parse_fields(r.value)
                out.append((r.seq, r.kind, None))
            else:
                raise transcript_error("transcript.txt", f"record {r.seq}: a recovery "
                                       f"transcript has no {rq(r.kind)} records")
        except FieldError as e:
            msg = str(e) if r.kind in RECOVERY_FIELDS else f"{r.kind}: {e}"
            raise transcript_error("transcript.txt", f"record {r.seq}: {msg}")
    return out


class RecoveryRecords:
    """The records by kind, after their order was checked: the once-only ones as (seq,
    fields), the others as lists of them."""

    def __init__(self, typed):
        if not typed or typed[-1][1] != "ceremony.end":
            raise missing_record("the last record is not ceremony.end: the transcript is "
                                 "incomplete")
        by_kind, last = {}, None
        for seq, kind, fields in typed:
            place = RECOVERY_PLACE.get(kind)
            if place is not None:
                if last is not None and place < last[0]:
                    raise missing_record(f"record {seq} ({kind}): out of the recovery's order: "
                                         f"it comes after a {last[1]} record")
                last = (place, kind)
                by_kind.setdefault(kind, []).append((seq, fields))
            elif last is not None and last[0] >= RECOMBINED_PLACE:
                raise missing_record(f"record {seq} ({kind}): a screen's record after a "
                                     f"{last[1]} record: they come only until the holders are "
                                     "done")

        def one(kind):
            found = by_kind.get(kind, [])
            if not found:
                raise missing_record(f"no {kind} record")
            if len(found) > 1:
                raise missing_record(f"{len(found)} {kind} records (the first is record "
                                     f"{found[0][0]}); a recovery has one")
            return found[0]

        self.generation = one("recovery.generation")
        self.request = one("recovery.request")
        self.policy = one("recovery.policy")
        self.recombined = one("recovery.recombined")
        self.end = one("ceremony.end")
        self.approvals, self.shares, self.signed, self.quorum, self.certified, self.outputs = (
            by_kind.get(k, []) for k in ("recovery.approval", "recovery.share",
                                         "recovery.signed", "recovery.quorum",
                                         "recovery.certified", "output.file"))
        # The recovery.replaced and recovery.reshared records, in the order written, as
        # (seq, kind, fields).
        self.applied = [(seq, kind, fields) for seq, kind, fields in typed
                        if kind in ("recovery.replaced", "recovery.reshared")]
        self.rebuilt, self.location, self.sealed, self.cards, self.pins = (
            by_kind.get(k, []) for k in REPLACE_CARD_KINDS)
        (self.reshare, self.new_location, self.new_sealed, self.new_subsets, self.old_shares,
         self.new_cards, self.new_pins) = (by_kind.get(k, []) for k in RESHARE_KINDS)
        # Every kind's records, for the operation's check of other operations' kinds.
        self.by_kind = by_kind


def recovery_failure(code, what, reason):
    return Failure(code, f"{what}: {reason}")


def check_recovery_policy(plan, plan_label, request, r):
    """The policy records against the [policy] of the plan in force (named `plan_label`, as
    Pinned.plan_label names it): `none` exactly when it has
    none; otherwise `held`, the rule's k, at least k approvals, one record each, by distinct
    approvers of the policy with a certificate the plan lists for them and a key of it (the
    approval files are not in the folder). Returns the report's line."""
    seq, p = r.policy

    def bad(at, kind, reason):
        return recovery_failure("bad-record", rec_name(at, kind), reason)

    policy = plan.policy
    if policy is None:
        if p["policy"] != "none" or p["needed"] != 0 or p["approvals"] != 0:
            raise bad(seq, "recovery.policy", f"policy={p['policy']} needed={p['needed']} "
                      f"approvals={p['approvals']}, but {plan_label} has no [policy] "
                      "(policy=none needed=0 approvals=0)")
        if r.approvals:
            raise bad(r.approvals[0][0], "recovery.approval",
                      f"an approval, but {plan_label} has no [policy]")
        return f"none: {plan_label} has no [policy]"
    if p["policy"] != "held":
        raise bad(seq, "recovery.policy", f"policy={p['policy']}, but {plan_label} has "
                  "a [policy] (policy=held)")
    op = request.operation
    k = policy["k"][op]
    if p["needed"] != k:
        raise bad(seq, "recovery.policy", f"needed={p['needed']}, but {plan_label}'s "
                  f"policy needs {k} approver(s) for {op}")
    if p["approvals"] < k:
        raise bad(seq, "recovery.policy", f"approvals={p['approvals']}: fewer than the {k} "
                  "needed")
    if len(r.approvals) != p["approvals"]:
        raise bad(seq, "recovery.policy", f"approvals={p['approvals']}, but there are "
                  f"{len(r.approvals)} recovery.approval records")
    names = []
    for at, a in r.approvals:
        who = a["approver"]
        approver = next((x for x in policy["approvers"] if x["name"] == who), None)
        if approver is None:
            raise bad(at, "recovery.approval", f"{rq(who)} is not an approver of "
                      f"{plan_label}'s [policy]")
        if who in names:
            raise bad(at, "recovery.approval", f"approver {rq(who)} is counted twice; each "
                      "approver counts once")
        cert = next((c for c in approver["certs"] if c.fingerprint == a["cert"]), None)
        if cert is None:
            raise bad(at, "recovery.approval", f"the certificate {a['cert']} is not one the "
                      f"plan lists for approver {rq(who)}")
        if a["key"] not in [key.fingerprint for key in cert.cert.all_keys()]:
            raise bad(at, "recovery.approval", f"the key {a['key']} is not a key of approver "
                      f"{rq(who)}'s certificate {a['cert']}")
        names.append(who)
    return f"held: {op} needs {k} approver(s); {len(names)} approved ({', '.join(names)})"


def check_recovery_shares(pinned, shares):
    """Check 5: each recovery.share is a holder of the plan in force (the generation's, or the
    last reshare's), once, named as there, with the pinned sealed share and PIN file for that
    holder (the generation folder's, or those of the last replace-card or reshare folder that
    set them), read by a personal key of the holder or of their backup; at least M of them.
    Returns the holders in order."""
    plan, plan_label = pinned.plan, pinned.plan_label
    holders = []
    for seq, b in shares:
        def bad(reason):
            return Failure("mismatch", f"transcript.txt record {seq} (recovery.share, holder "
                           f"{b['holder']}): {reason}")
        if not 1 <= b["holder"] <= len(plan.holders):
            raise bad(f"not a holder of {plan_label} (holders 1..={len(plan.holders)})")
        holder = plan.holders[b["holder"] - 1]
        if b["holder"] in holders:
            raise bad("this holder's share is already recorded: each holder counts once")
        if b["name"] != holder["name"]:
            raise bad(f"name {rq(b['name'])}, {plan_label}'s holder {b['holder']} is "
                      f"{rq(holder['name'])}")
        share = pinned.share(b["holder"])
        source = pinned.share_source(b["holder"])
        sealed = share["message_sha256"]
        if b["envelope"] != sealed:
            whose = {
                "generation": "the generation transcript's share.sealed for this holder",
                "replace-card": "the last replace-card transcript's recovery.sealed for this "
                                "holder",
                "reshare": "the last reshare transcript's recovery.new-sealed for this holder",
            }[source]
            raise bad(f"envelope {b['envelope']}, but {whose} is {sealed}")
        pin_path = f"pins/holder-{b['holder']:03d}.asc"
        pins = share["pin_file_sha256"]
        if b["pins"] != pins:
            whose = {
                "generation": f"the generation folder's {pin_path}",
                "replace-card": f"the holder's PIN file from their last replace-card folder "
                                f"({pin_path})",
                "reshare": f"the holder's PIN file from the last reshare folder ({pin_path})",
            }[source]
            raise bad(f"pins {b['pins']}, but the SHA-256 of {whose} is {pins}")
        if b["reader"] == "holder":
            reader = holder
        elif b["reader"] == "backup":
            reader = plan.holders[holder["backup"] - 1]
        else:
            raise bad(f"reader={rq(b['reader'])}: the reader is \"holder\" or \"backup\"")
        if b["reader-name"] != reader["name"]:
            raise bad(f"reader-name {rq(b['reader-name'])}, but the {b['reader']} is "
                      f"{rq(reader['name'])} in {plan_label}")
        if not any(k.fingerprint == b["personal"] for c in reader["certs"]
                   for k in c.cert.all_keys()):
            raise bad(f"personal {b['personal']}: not a key of the {b['reader']} "
                      f"({reader['name']})'s certificates in {plan_label}")
        holders.append(b["holder"])
    if len(holders) < plan.threshold:
        raise missing_record(f"{len(holders)} recovery.share record(s), {plan_label}'s "
                             f"threshold is {plan.threshold}")
    return holders


def check_recombined(pinned, r, holders):
    seq, rc = r.recombined
    plan_label = pinned.plan_label

    def bad(reason):
        return recovery_failure("mismatch", rec_name(seq, "recovery.recombined"), reason)

    expected = ",".join(map(str, holders))
    if rc["holders"] != expected:
        raise bad(f"holders={rc['holders']}, but the recovery.share records are holders "
                  f"{expected}, in that order")
    # Worded as sherd-verify words it: the plan in force is named by Pinned.plan_label.
    if rc["threshold"] != pinned.plan.threshold:
        raise bad(f"threshold={rc['threshold']}, but {plan_label}'s threshold is "
                  f"{pinned.plan.threshold}")
    if rc["root"] != r.generation[1]["root"] or rc["root"] != pinned.root_fingerprint:
        raise bad(f"root={rc['root']}, but record 1 and the generation folder say "
                  f"{pinned.root_fingerprint}")


def expected_outputs(request):
    """The files a recovery of this request writes besides the transcript and its
    signature."""
    out = ["request.toml", "root-cert.asc"]
    if request.operation == "sign":
        out += [signature_path(i + 1, f["name"]) for i, f in enumerate(request.files)]
    elif request.operation == "prove-quorum":
        out += [CHALLENGE, CHALLENGE_SIG]
    elif request.operation == "certify":
        out.append(CERTIFIED)
    elif request.operation == "replace-card":
        h = request.holder
        out += ["shards.toml", f"pins/holder-{h:03d}.asc", f"location/holder-{h:03d}.asc",
                f"sealed/holder-{h:03d}.pgp"]
    elif request.operation == "reshare":
        out += ["plan.toml", "shards.toml"]
        out += [f"pins/holder-{h['index']:03d}.asc" for h in request.plan.holders]
    return out


def check_recovery_outputs(folder, request, r, get):
    """Check 6: each output.file by size and SHA-256, ceremony.end counts them, they are the
    files the operation writes, and no other file is in the folder. Returns the listed files'
    bytes by path, in the records' order."""
    expected = expected_outputs(request)
    op = request.operation
    listed = {}
    for seq, o in r.outputs:
        path = o["path"]

        def bad(reason):
            return Failure("mismatch", f"{path}: {reason} (transcript.txt record {seq}, "
                           "output.file)")
        if not path_stays_inside(path):
            raise bad("the path would leave the folder")
        if path in ("transcript.txt", "transcript.txt.sig"):
            raise bad("the transcript and its signature are not listed in the transcript")
        if path not in expected:
            raise bad(f"not a file a {op} recovery writes")
        if path in listed:
            raise bad("listed twice")
        try:
            data = get(path)
        except Failure as e:
            if getattr(e, "not_found", False):
                raise Failure("missing-file", f"{path}: missing: transcript.txt record {seq} "
                              "(output.file) lists it")
            raise
        if len(data) != o["size"]:
            raise bad(f"{len(data)} bytes, the record says {o['size']}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != o["sha256"]:
            raise bad(f"SHA-256 {digest}, the record says {o['sha256']}")
        listed[path] = data
    end_seq, end = r.end
    if end["files"] != len(r.outputs):
        raise Failure("mismatch", f"transcript.txt record {end_seq} (ceremony.end): "
                      f"files={end['files']}, but there are {len(r.outputs)} output.file "
                      "records")
    for path in expected:
        if path not in listed:
            raise Failure("missing-record", f"{path}: a {op} recovery writes it, but no "
                          "output.file record lists it")
    for path in list_folder(folder):
        if path not in ("transcript.txt", "transcript.txt.sig") and path not in listed:
            raise Failure("extra-file", f"{path}: in the folder, but no output.file record "
                          "of transcript.txt lists it")
    return listed


def check_recovery_operation(g, request, r, listed, files, dated):
    """Check 7: the operation's records are the request's, and its outputs verify with the
    pinned root key (the signatures over the files too, with `files`, a reader of the folder
    holding them). Appends each signature made to `dated`, for the dates. Returns the
    report's lines."""
    root = g["root_cert"].primary
    op = request.operation

    def fail(what, reason):
        return recovery_failure("operation", what, reason)

    check_foreign_records(request, r)
    lines = []
    if op == "sign":
        if len(r.signed) != len(request.files):
            raise missing_record(f"{len(r.signed)} recovery.signed records, the request names "
                                 f"{len(request.files)} file(s)")
        for i, ((seq, b), f) in enumerate(zip(r.signed, request.files)):
            what = rec_name(seq, "recovery.signed")
            if b["name"] != f["name"]:
                raise fail(what, f"name {rq(b['name'])}, but the request's file {i + 1} is "
                           f"{rq(f['name'])}")
            if b["sha256"] != f["sha256"]:
                raise fail(what, f"sha256 {b['sha256']}, but the request gives {f['sha256']} "
                           f"for {rq(f['name'])}")
            path = signature_path(i + 1, f["name"])
            if b["signature"] != path:
                raise fail(what, f"signature {rq(b['signature'])}, but the signature of the "
                           f"request's file {i + 1} is {path}")
            sig_bytes = listed[path]
            try:
                sig = read_signature(sig_bytes)
            except PgpError as e:
                raise fail(path, f"not an OpenPGP signature: {e}")
            shape = root_signature_shape(sig, root.fingerprint)
            if shape is not None:
                raise fail(path, shape)
            dated.append((path, sig))
            if files is None:
                lines.append(f"{path}: by the root key, for {rq(f['name'])} (SHA-256 "
                             f"{b['sha256']}, {b['size']} bytes); not checked over the file "
                             "(give --files)")
                continue
            try:
                data = files(f["name"])
            except Failure as e:
                why = str(e).split(": cannot read: ", 1)[-1]
                raise Failure("unreadable", f"{f['name']}: cannot read the file the request "
                              f"names: {why}")
            digest = hashlib.sha256(data).hexdigest()
            if digest != f["sha256"] or len(data) != b["size"]:
                raise fail(f"{f['name']} (the file given)", f"SHA-256 {digest}, {len(data)} "
                           f"bytes; the request and {what} say {b['sha256']}, {b['size']} bytes")
            why = sig.check(root, data)
            if why is not None:
                raise fail(path, f"not a good signature by the root key over {rq(f['name'])}: "
                           f"{why}")
            lines.append(f"{path}: a good signature by the root key over {rq(f['name'])} "
                         f"(SHA-256 {b['sha256']})")
    elif op == "prove-quorum":
        if len(r.quorum) != 1:
            raise missing_record(f"{len(r.quorum)} recovery.quorum records; a prove-quorum "
                                 "recovery has one")
        seq, q = r.quorum[0]
        what = rec_name(seq, "recovery.quorum")
        data = listed[CHALLENGE]
        challenge = request.challenge.encode()
        if data != challenge:
            raise fail(CHALLENGE, "not the request's challenge, byte for byte")
        digest = hashlib.sha256(challenge).hexdigest()
        if q["challenge-sha256"] != digest:
            raise fail(what, f"challenge-sha256 {q['challenge-sha256']}, but the request's "
                       f"challenge has SHA-256 {digest}")
        if q["signature"] != CHALLENGE_SIG:
            raise fail(what, f"signature {rq(q['signature'])}, the challenge's signature is "
                       f"{CHALLENGE_SIG}")
        sig, why = check_root_signature(listed[CHALLENGE_SIG], data, root, CHALLENGE)
        if why is not None:
            raise fail(CHALLENGE_SIG, f"not a good signature by the root key over {CHALLENGE}: "
                       f"{why}")
        dated.append((CHALLENGE_SIG, sig))
        lines.append(f"{CHALLENGE_SIG}: a good signature by the root key over the challenge "
                     f"{rq(request.challenge)}")
    else:
        fpr = request.cert.fingerprint
        if len(r.certified) != len(request.user_ids):
            raise missing_record(f"{len(r.certified)} recovery.certified records, the request "
                                 f"names {len(request.user_ids)} user ID(s)")
        data = listed[CERTIFIED]
        try:
            try:
                binary = dearmor(data, "PGP PUBLIC KEY BLOCK")
            except PgpError:
                binary = data  # a binary certificate is read as well
            certified = read_cert(binary)
        except PgpError as e:
            raise fail(CERTIFIED, f"not a certificate: {e}")
        if certified.fingerprint != fpr:
            raise fail(CERTIFIED, f"the certificate {certified.fingerprint}, but the request's "
                       f"is {fpr}")
        expiry = request.expiry or 0
        for i, ((seq, b), uid) in enumerate(zip(r.certified, request.user_ids)):
            what = rec_name(seq, "recovery.certified")
            if b["cert"] != fpr:
                raise fail(what, f"cert {b['cert']}, but the request's certificate is {fpr}")
            if b["user-id"] != uid:
                raise fail(what, f"user-id {rq(b['user-id'])}, but the request's user ID "
                           f"{i + 1} is {rq(uid)}")
            if b["expiry"] != expiry:
                raise fail(what, f"expiry {b['expiry']}, but the request's is {expiry} "
                           "(0: none)")
            sigs = certified.certifications(uid.encode(), root)
            if not sigs:
                raise fail(CERTIFIED, f"no good certification of the user ID {rq(uid)} by the "
                           "root key")
            dated.append((f"{CERTIFIED} (the certification of {rq(uid)})", sigs))
            lines.append(f"{CERTIFIED}: {rq(uid)} certified by the root key")
    return lines


def check_dates(dated, request):
    """recovery.md dates every signature of the folder at the request's time, and a
    certification expires at the request's expiry (if any); sherd-verify checks the same,
    last in check 7."""
    for what, sigs in dated:
        sigs = sigs if isinstance(sigs, list) else [sigs]
        want_expiry = getattr(request, "expiry", None) if what.startswith(CERTIFIED) else None
        if not any(s.created == request.time and s.expires_at() == want_expiry for s in sigs):
            s = sigs[0]
            made = rfc3339(s.created) if s.created is not None else "an unknown time"
            expires = s.expires_at()
            raise Failure("mismatch", f"{what}: made at {made}"
                          + (f", expiring {rfc3339(expires)}" if expires else "")
                          + f", not at the request time {rfc3339(request.time)}"
                          + (f" expiring at the request's expiry {rfc3339(want_expiry)}"
                             if want_expiry else "")
                          + " (every signature of a recovery carries the request time)")


class Pinned:
    """What a recovery folder is checked against: the root pinned from a verified generation
    folder, with each replace-card or reshare folder applied in the order given (recovery.md,
    "The next recovery: pinning with the replace-card folder", "... with the reshare folder").
    The current plan is the generation's, or the last reshare's new plan. Each holder's current
    share is the generation's (or the last reshare's), or, for a holder whose cards were
    replaced since, the last replacement's: its location certificate, sealed share's SHA-256,
    PIN file's SHA-256 and card serials. The key time stays the generation plan's time."""

    def __init__(self, g):
        self.g = g
        self.plan, self.root_cert = g["plan"], g["root_cert"]
        self.key_time = g["plan"].time
        self.root_fingerprint = g["root_fingerprint"]
        self.shards = g["shards"]
        self.shares = []
        for s in self.shards.shares:
            pins = g["files"][f"pins/holder-{s['index']:03d}.asc"]
            self.shares.append({"index": s["index"], "location_cert": s["location_cert"],
                                "message_sha256": s["message_sha256"],
                                "pin_file_sha256": hashlib.sha256(pins).hexdigest(),
                                "cards": g["card_serials"].get(s["index"], [])})
        self.retired = []
        self.replacements = []
        # Every folder applied, in order: ("replace-card", what it names) or ("reshare", ...).
        self.applied = []

    def share(self, index):
        return self.shares[index - 1] if 1 <= index <= len(self.shares) else None

    def card_with_serial(self, serial):
        """(holder, card number) of a card of this ceremony with that serial, current shares
        first, then the replaced ones, oldest first; None if none."""
        for s in self.shares + self.retired:
            if serial in s["cards"]:
                return s["index"], s["cards"].index(serial) + 1
        return None

    def share_source(self, index):
        """Which folder gave holder `index` the share pinned now, as sherd-verify's
        ShareSource: "replace-card" or "reshare", whichever came last, else "generation"."""
        for kind, what in reversed(self.applied):
            if kind == "reshare" or what["holder"] == index:
                return kind
        return "generation"

    @property
    def plan_label(self):
        """How messages name the plan in force, as sherd-verify's PinnedRoot::plan_label: the
        last reshare's plan once one is applied (its holders, threshold and policy)."""
        if any(kind == "reshare" for kind, _ in self.applied):
            return "the reshared plan"
        return "the generation plan"

    def apply(self, new):
        """Takes the new share of a replace-card folder that passed against this root."""
        h = new["holder"]
        share = new["shards"].shares[h - 1]
        self.replacements.append({
            "holder": h, "transcript": new["transcript"],
            "location": share["location_cert"].fingerprint,
            "envelope": share["message_sha256"], "pins": new["pins"]})
        self.applied.append(("replace-card", self.replacements[-1]))
        self.retired.append(self.shares[h - 1])
        self.shares[h - 1] = {"index": h, "location_cert": share["location_cert"],
                              "message_sha256": share["message_sha256"],
                              "pin_file_sha256": new["pins"], "cards": new["serials"]}
        self.shards = new["shards"]

    def apply_reshare(self, new):
        """Takes the new plan and shares of a reshare folder that passed against this root
        (recovery.md, "The next recovery: pinning with the reshare folder"): the new plan is
        the current plan (holders, threshold, policy), every share is the new one (location
        certificate and sealed share from its shards.toml, PIN file from its pins/, cards from
        its recovery.new-card records), every share before it retired; the root and the key
        time stay."""
        plan, shards = new["plan"], new["shards"]
        self.applied.append(("reshare", {"transcript": new["transcript"], "plan": plan.hash,
                                         "threshold": plan.threshold,
                                         "holders": len(plan.holders)}))
        self.retired.extend(self.shares)
        self.shares = [{"index": s["index"], "location_cert": s["location_cert"],
                        "message_sha256": s["message_sha256"],
                        "pin_file_sha256": new["pins"][s["index"]],
                        "cards": new["cards"].get(s["index"], [])} for s in shards.shares]
        self.plan, self.shards = plan, shards


def verify_recovery(folder, generation, files_folder=None, replaced=()):
    """Verifies the recovery folder against the generation folder it used and the replace-card
    and reshare folders `replaced` the root was pinned with, in the order they were made (recovery.md,
    "Checking a recovery folder by hand", 1-7, and the records no by-hand check covers).
    Returns the report (a dict) or raises Failure."""
    gen_get = folder_reader(generation)
    try:
        if is_recovery_transcript(gen_get("transcript.txt")):
            raise Failure("generation", "the generation folder's transcript.txt is a recovery "
                          "transcript (record 1 is recovery.generation): give the generation "
                          "ceremony's output folder as the generation folder")
    except Failure as e:
        if e.code == "generation":
            raise
    try:
        g = verify_folder(generation)
    except Failure as e:
        raise Failure("generation", f"the generation folder does not verify: {e}")
    pinned = Pinned(g)
    for name in replaced:
        try:
            r = verify_pinned(name, pinned)
        except Failure as e:
            raise Failure("replaced", f"the replace-card/reshare folder {name} does not verify "
                          "against the generation folder and the replace-card/reshare folders "
                          "given before it (give them in the order the recoveries were made): "
                          f"{e}")
        if r["operation"] == "replace-card":
            pinned.apply(r["replace"])
        elif r["operation"] == "reshare":
            pinned.apply_reshare(r["reshare"])
        else:
            raise Failure("replaced", f"{name} is a {r['operation']} recovery's folder, neither "
                          "a replace-card nor a reshare one: give only replace-card and reshare "
                          "folders with the generation folder")
    return verify_pinned(folder, pinned, files_folder)


def check_replaced(pinned, r):
    """Check 3 (continued): one recovery.replaced record per replace-card folder and one
    recovery.reshared record per reshare folder the root was pinned with, in the one order
    they were applied, each naming its folder: the transcript's final hash and, for
    replace-card, the holder, new location certificate, sealed share and PIN file; for
    reshare, the new plan's hash, M' and N'."""
    applied = pinned.applied
    if len(r.applied) != len(applied):
        raise Failure("replaced", f"transcript.txt: {len(r.applied)} "
                      "recovery.replaced/recovery.reshared record(s), but the root was pinned "
                      f"with {len(applied)} replace-card/reshare folder(s): give exactly the "
                      "folders this recovery used, in the order they were made")
    for i, ((seq, kind, b), (op, a)) in enumerate(zip(r.applied, applied)):
        want = "recovery.replaced" if op == "replace-card" else "recovery.reshared"
        if kind != want:
            raise Failure("replaced", f"transcript.txt: record {seq} ({kind}), but folder "
                          f"{i + 1} given is a {op} folder: give the folders in the order they "
                          "were made")
        fields = (("holder", "transcript", "location", "envelope", "pins")
                  if op == "replace-card" else ("transcript", "plan", "threshold", "holders"))
        for field in fields:
            if str(b[field]) != str(a[field]):
                raise Failure("replaced", f"transcript.txt: record {seq} ({kind}): its {field} "
                              f"is {b[field]}, but folder {i + 1} given says {a[field]}")


def verify_pinned(folder, pinned, files_folder=None):
    """Verifies the recovery folder against the pinned root. Returns the report (a dict; for
    a replace-card folder with what it replaces under "replace") or raises Failure."""
    g = pinned.g
    root_fpr, root = pinned.root_fingerprint, pinned.root_cert
    get = recovery_reader(folder)
    dated = []

    # 1. The chain.
    transcript_bytes = get("transcript.txt")
    t = Transcript(transcript_bytes)

    # 2. The signature by the pinned root key; root-cert.asc is the same key.
    sig, why = check_root_signature(get("transcript.txt.sig"), transcript_bytes, root.primary,
                                    "the transcript")
    if why is not None:
        raise Failure("signature", "transcript.txt.sig: not a good signature over "
                      f"transcript.txt by the generation's root key {root_fpr}: {why}")
    dated.append(("transcript.txt.sig", sig))
    cert_bytes = get("root-cert.asc")
    try:
        try:
            binary = dearmor(cert_bytes, "PGP PUBLIC KEY BLOCK")
        except PgpError:
            binary = cert_bytes
        rec_root = read_cert(binary)
    except PgpError as e:
        if str(e) == "contains secret key material":
            raise invalid("root-cert.asc", str(e))
        raise invalid("root-cert.asc", f"not a certificate: {e}")
    if rec_root.fingerprint != root_fpr:
        raise invalid("root-cert.asc", f"the certificate of {rec_root.fingerprint}, not the "
                      f"generation's root key {root_fpr}")

    # The records, typed, in the recovery's order.
    r = RecoveryRecords(recovery_records(t))

    # 3. The link to the generation folder (and the replace-card folders applied to it).
    seq, link = r.generation
    plan = pinned.plan
    for field, expected, found in [("ceremony", plan.ceremony_id, link["ceremony"]),
                                   ("transcript", g["final_hash"], link["transcript"]),
                                   ("root", root_fpr, link["root"])]:
        if expected != found:
            if field == "transcript":
                expected += " (the final hash of the generation's transcript.txt)"
            raise Failure("mismatch", f"transcript.txt record {seq} (recovery.generation): its "
                          f"{field} is {found}, the generation folder's is {expected}")
    check_replaced(pinned, r)

    # 4. The request: parsed, for this root, and as recovery.request states it.
    request_bytes = get("request.toml")
    try:
        request = Request(request_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid("request.toml", "not UTF-8")
    except ValueError as e:
        raise invalid("request.toml", str(e))
    if request.ceremony_id != plan.ceremony_id:
        raise invalid("request.toml", f"the request is for ceremony {rq(request.ceremony_id)}, "
                      f"but the generation folder is ceremony {rq(plan.ceremony_id)}")
    if request.root_fingerprint != root_fpr:
        raise invalid("request.toml", f"the request is for root key {request.root_fingerprint}, "
                      f"but the generation transcript's root key is {root_fpr}")
    if request.time < pinned.key_time:
        raise invalid("request.toml", f"the request time {rfc3339(request.time)} is before the "
                      f"root key's creation time {rfc3339(pinned.key_time)}")
    if request.operation == "replace-card" and request.holder > len(plan.holders):
        raise invalid("request.toml", f"holder {request.holder} is not in {pinned.plan_label} "
                      f"(holders 1..={len(plan.holders)})")
    if request.operation == "reshare" and request.time < plan.time:
        raise invalid("request.toml", f"the reshare request time {rfc3339(request.time)} is "
                      f"before the current plan's time {rfc3339(plan.time)}: a new plan is dated "
                      "after the one it replaces")
    seq, rr = r.request
    for field, recorded, found in [
        ("file-sha256", rr["file-sha256"], hashlib.sha256(request_bytes).hexdigest()),
        ("hash", rr["hash"], request.hash), ("operation", rr["operation"], request.operation),
        ("time", str(rr["time"]), str(request.time)),
    ]:
        if recorded != found:
            raise Failure("mismatch", f"transcript.txt record {seq} (recovery.request): its "
                          f"{field} is {recorded}, but request.toml gives {found}")
    policy = check_recovery_policy(plan, pinned.plan_label, request, r)

    # 5. The shares, and what recombined.
    holders = check_recovery_shares(pinned, r.shares)
    check_recombined(pinned, r, holders)

    # 6. The outputs.
    listed = check_recovery_outputs(folder, request, r, get)

    # 7. The operation.
    replace = reshare = None
    if request.operation == "replace-card":
        check_foreign_records(request, r)
        lines, replace = check_replace_card(pinned, r, listed, request.holder, request.cards)
        replace["transcript"] = t.final_hash().hex()
    elif request.operation == "reshare":
        check_foreign_records(request, r)
        lines, reshare = check_reshare(pinned, r, listed, request.plan)
        reshare["transcript"] = t.final_hash().hex()
    else:
        lines = check_recovery_operation(g, request, r, listed,
                                         folder_reader(files_folder) if files_folder else None,
                                         dated)
    check_dates(dated, request)

    return {
        "ceremony_id": plan.ceremony_id, "root_fingerprint": root_fpr,
        "generation_final_hash": g["final_hash"], "generation_final_words": g["final_words"],
        "operation": request.operation, "request_hash": request.hash,
        "request_words": request.words, "request_time": rfc3339(request.time),
        "policy": policy, "threshold": plan.threshold,
        "holders": [(i, plan.holders[i - 1]["name"]) for i in holders],
        "operation_lines": lines, "outputs": list(listed), "records": len(t.records),
        "final_hash": t.final_hash().hex(), "final_words": pgp_words(t.final_hash()),
        "replace": replace, "reshare": reshare,
        "applied": [op for op, _ in pinned.applied],
    }


def check_foreign_records(request, r):
    """No record of another operation's kind (the first of them by number is named)."""
    of = {"recovery.signed": "sign", "recovery.quorum": "prove-quorum",
          "recovery.certified": "certify"}
    of.update((k, "replace-card") for k in REPLACE_CARD_KINDS)
    of.update((k, "reshare") for k in RESHARE_KINDS)
    foreign = [(recs[0][0], kind) for kind, op in of.items()
               if op != request.operation and (recs := r.by_kind.get(kind))]
    if foreign:
        seq, kind = min(foreign)
        raise recovery_failure("operation", rec_name(seq, kind),
                               f"the request's operation is {request.operation}")


def read_any_cert(data):
    """A certificate, armored or binary; raises PgpError."""
    try:
        binary = dearmor(data, "PGP PUBLIC KEY BLOCK")
    except PgpError:
        binary = data
    return read_cert(binary)


def check_replace_card(pinned, r, listed, holder, cards):
    """Check 7 for replace-card (recovery.md, "replace-card", "Checking it"): the records name
    the request's holder, once each, in order; the new location certificate is of the shape
    generation makes, its key new to the ceremony; the new sealed share is the recorded one,
    encrypted to that key alone; the new shard file is the pinned one but for the holder's
    entry; the new cards are the request's number, none a card of the ceremony before; the
    new PIN file is the recorded one, encrypted to exactly the holder's and the backup
    holder's personal certificates' keys. Returns (the report's lines, what the folder
    replaces)."""
    plan, plan_label = pinned.plan, pinned.plan_label
    h, old = plan.holders[holder - 1], pinned.share(holder)

    def fail(what, reason):
        return recovery_failure("operation", what, reason)

    def once(found, kind):
        if len(found) != 1:
            raise missing_record(f"{len(found)} {kind} records; a replace-card recovery has one")
        return found[0]

    def wrong_holder(seq, kind, found):
        return fail(rec_name(seq, kind), f"holder={found}, but the request replaces holder "
                    f"{holder}'s cards")

    # recovery.rebuilt: from the recombined holders.
    seq, rb = once(r.rebuilt, "recovery.rebuilt")
    what = rec_name(seq, "recovery.rebuilt")
    if rb["holder"] != holder:
        raise wrong_holder(seq, "recovery.rebuilt", rb["holder"])
    if rb["name"] != h["name"]:
        raise fail(what, f"name {rq(rb['name'])}, {plan_label}'s holder {holder} is "
                   f"{rq(h['name'])}")
    recombined = r.recombined[1]["holders"]
    if rb["from"] != recombined:
        raise fail(what, f"from={rb['from']}, but recovery.recombined's holders are {recombined}")
    if rb["checked"] == 0:
        raise fail(what, "checked=0: the rebuilt share was not recombined with the others")

    # The new location certificate.
    seq, loc = once(r.location, "recovery.location")
    what = rec_name(seq, "recovery.location")
    if loc["holder"] != holder:
        raise wrong_holder(seq, "recovery.location", loc["holder"])
    cert_path = f"location/holder-{holder:03d}.asc"
    try:
        cert = read_any_cert(listed[cert_path])
    except PgpError as e:
        if str(e) == "contains secret key material":
            raise fail(cert_path, str(e))
        raise fail(cert_path, f"not a certificate: {e}")
    try:
        subkey = check_location_cert(cert, pinned.key_time)
    except (ValueError, PgpError) as e:
        raise fail(cert_path, str(e))
    fpr = cert.fingerprint
    for field, recorded, found in [("fingerprint", loc["fingerprint"], fpr),
                                   ("subkey", loc["subkey"], subkey)]:
        if recorded != found:
            raise fail(what, f"{field} {recorded}, but {cert_path} gives {found}")
    old_fpr = old["location_cert"].fingerprint
    if loc["replaces"] != old_fpr:
        raise fail(what, f"replaces {loc['replaces']}, but holder {holder}'s pinned location "
                   f"certificate is {old_fpr}")
    for s in pinned.shares + pinned.retired:
        if s["location_cert"].fingerprint == fpr:
            raise fail(cert_path, f"the location certificate {fpr} is holder {s['index']}'s "
                       "already: a replacement's key is new")

    # The new sealed share: the recorded one, encrypted to the new key only.
    seq, sl = once(r.sealed, "recovery.sealed")
    what = rec_name(seq, "recovery.sealed")
    if sl["holder"] != holder:
        raise wrong_holder(seq, "recovery.sealed", sl["holder"])
    sealed_path = f"sealed/holder-{holder:03d}.pgp"
    sealed = listed[sealed_path]
    sealed_digest = hashlib.sha256(sealed).hexdigest()
    if sl["sha256"] != sealed_digest:
        raise fail(what, f"sha256 {sl['sha256']}, but {sealed_path} has SHA-256 {sealed_digest}")
    if sl["replaces"] != old["message_sha256"]:
        raise fail(what, f"replaces {sl['replaces']}, but holder {holder}'s pinned sealed share "
                   f"has SHA-256 {old['message_sha256']}")
    try:
        recipients = sorted(set(message_recipients(sealed)))
    except PgpError as e:
        raise fail(sealed_path, str(e))
    subkey_id = next((k.keyid for k in cert.all_keys()[1:] if k.fingerprint == subkey), "")
    if recipients != [subkey_id]:
        raise fail(sealed_path, f"encrypted to key ID(s) {','.join(recipients)}, not to the new "
                   f"location key's {subkey_id} alone")

    # The new shard file: the pinned one but for the holder's entry.
    try:
        shards = ShardFile(listed["shards.toml"].decode("utf-8"))
    except UnicodeDecodeError:
        raise fail("shards.toml", "not UTF-8")
    except ValueError as e:
        raise fail("shards.toml", str(e))
    check_new_shards(pinned.shards, shards, holder, fpr, sealed_digest)

    # The new cards: the request's number, in order, each with the new key, none seen before.
    if len(r.cards) != cards:
        raise missing_record(f"{len(r.cards)} recovery.card records, the request asks for "
                             f"{cards} new card(s)")
    serials = []
    for i, (seq, c) in enumerate(r.cards):
        what = rec_name(seq, "recovery.card")
        if c["holder"] != holder:
            raise wrong_holder(seq, "recovery.card", c["holder"])
        if c["card"] != i + 1:
            raise fail(what, f"card={c['card']}, where card {i + 1} is, in order")
        if c["location"] != fpr:
            raise fail(what, f"location {c['location']}, but the new location certificate is "
                       f"{fpr}")
        if c["serial"] in serials:
            raise fail(what, f"serial {c['serial']} twice: each new card is a different card")
        known = pinned.card_with_serial(c["serial"])
        if known is not None:
            raise fail(what, f"serial {c['serial']} is holder {known[0]}'s card {known[1]} "
                       "already: a replacement card is a new card")
        serials.append(c["serial"])

    # The new PIN file: the recorded one, to the holder's and the backup's certificates.
    seq, pn = once(r.pins, "recovery.pins")
    what = rec_name(seq, "recovery.pins")
    if pn["holder"] != holder:
        raise wrong_holder(seq, "recovery.pins", pn["holder"])
    pins_path = f"pins/holder-{holder:03d}.asc"
    pin_file = listed[pins_path]
    digest = hashlib.sha256(pin_file).hexdigest()
    if pn["sha256"] != digest:
        raise fail(what, f"sha256 {pn['sha256']}, but {pins_path} has SHA-256 {digest}")
    if pn["replaces"] != old["pin_file_sha256"]:
        raise fail(what, f"replaces {pn['replaces']}, but holder {holder}'s pinned PIN file has "
                   f"SHA-256 {old['pin_file_sha256']}")
    backup = plan.holders[h["backup"] - 1]
    certs = h["certs"] + backup["certs"]
    planned = [c.fingerprint for c in certs]
    if pn["recipients"] != planned:
        raise fail(what, f"recipients {','.join(pn['recipients'])}, but the personal "
                   f"certificates of holder {holder}, then of backup holder {backup['index']}, "
                   f"are {','.join(planned)}")
    try:
        found = sorted(set(message_recipients(dearmor(pin_file, "PGP MESSAGE"))))
    except PgpError as e:
        raise fail(pins_path, str(e))
    expected = sorted({k.keyid for c in certs for k in c.cert.encryption_keys(plan.time)})
    if found != expected:
        raise fail(pins_path, f"encrypted to key ID(s) {','.join(found)}, but the encryption "
                   f"keys of holder {holder}'s and backup holder {backup['index']}'s personal "
                   f"certificates are {','.join(expected)}")

    lines = [
        f"holder {holder} ({h['name']}): share rebuilt from holders {rb['from']} "
        f"({rb['checked']} recombination check(s) with {rb['second']})",
        f"{cert_path}: new location key {fpr}, replacing {old_fpr}",
        f"{sealed_path}: the new sealed share (SHA-256 {sealed_digest}), encrypted to the new key "
        "only, in shards.toml",
        f"shards.toml: the pinned shard file but for holder {holder}'s entry",
        f"new cards: {', '.join(serials)}",
        f"{pins_path}: to holder {holder}'s and backup holder {backup['index']}'s personal "
        "certificates",
    ]
    return lines, {"holder": holder, "shards": shards, "pins": digest, "serials": serials}


def check_reshare(pinned, r, listed, new_plan):
    """Check 7 for reshare (recovery.md, "reshare", "Checking it"), against the root pinned so
    far: recovery.reshare names the request's new plan; plan.toml is that plan (the same
    canonical hash); shards.toml is a full shard file of it (the pinned root and ceremony, the
    key time, one share per new holder, in order); one recovery.new-location and
    recovery.new-sealed per new holder naming that share's location certificate (of the shape
    generation makes, new to the ceremony, no two alike) and message (encrypted to that key
    alone); recovery.new-subsets consistent with M'-of-N'; recovery.old-shares names the plan
    reshared; each new holder's cards once each, new serials; one recovery.new-pins per new
    holder for its PIN file, encrypted to exactly the holder's and backup's personal
    certificates' keys. Returns (the report's lines, what the folder pins)."""
    old_plan = pinned.plan
    n = len(new_plan.holders)

    def fail(what, reason):
        return recovery_failure("operation", what, reason)

    def once(found, kind):
        if len(found) != 1:
            raise missing_record(f"{len(found)} {kind} records; a reshare recovery has one")
        return found[0]

    # recovery.reshare: the request's new plan.
    seq, rs = once(r.reshare, "recovery.reshare")
    what = rec_name(seq, "recovery.reshare")
    for field, expected in [("plan", new_plan.hash), ("threshold", new_plan.threshold),
                            ("holders", n), ("witnesses", len(new_plan.witnesses))]:
        if str(rs[field]) != str(expected):
            raise fail(what, f"{field}={rs[field]}, but the request's new plan gives {expected}")

    # plan.toml: the request's new plan (the canonical hash does not depend on the spelling).
    try:
        written = Plan(listed["plan.toml"].decode("utf-8"))
    except UnicodeDecodeError:
        raise fail("plan.toml", "not UTF-8")
    except ValueError as e:
        raise fail("plan.toml", str(e))
    if written.hash != new_plan.hash:
        raise fail("plan.toml", f"its canonical hash is {written.hash}, but the request's new "
                   f"plan's is {new_plan.hash}")

    # shards.toml: the new plan's full shard file, under the pinned root and the key time.
    try:
        shards = ShardFile(listed["shards.toml"].decode("utf-8"))
    except UnicodeDecodeError:
        raise fail("shards.toml", "not UTF-8")
    except ValueError as e:
        raise fail("shards.toml", str(e))
    for field, expected, found in [
        ("ceremony_id", old_plan.ceremony_id, shards.ceremony_id),
        ("root_fingerprint", pinned.root_fingerprint, shards.root_fingerprint),
        ("plan_hash", new_plan.hash, shards.plan_hash),
        ("threshold", new_plan.threshold, shards.threshold),
        ("count", n, shards.count),
        ("key_time", pinned.key_time, shards.key_time),
        ("shares", n, len(shards.shares)),
    ]:
        if str(expected) != str(found):
            raise fail("shards.toml", f"{field} {found}, but the reshare's is {expected}")
    if not len(r.new_location) == len(r.new_sealed) == len(r.new_pins) == n:
        raise missing_record(f"{len(r.new_location)} recovery.new-location, "
                             f"{len(r.new_sealed)} recovery.new-sealed and {len(r.new_pins)} "
                             f"recovery.new-pins records, the new plan has {n} holders (one "
                             "each)")
    known = pinned.shares + pinned.retired
    new_fprs = []
    for h, s, (lseq, loc), (sseq, sl) in zip(new_plan.holders, shards.shares, r.new_location,
                                             r.new_sealed):
        i, where = h["index"], f"shards.toml share {h['index']}"
        if s["index"] != i or s["holder"] != h["name"]:
            raise fail("shards.toml", f"share {s['index']} is {rq(s['holder'])}, the new plan's "
                       f"holder {i} is {rq(h['name'])}")
        what = rec_name(lseq, "recovery.new-location")
        if loc["holder"] != i or loc["name"] != h["name"]:
            raise fail(what, f"holder={loc['holder']} name={rq(loc['name'])}, where the new "
                       f"plan's holder {i} ({rq(h['name'])}) is, in order")
        cert = s["location_cert"]
        try:
            subkey = check_location_cert(cert, pinned.key_time)
        except (ValueError, PgpError) as e:
            raise fail(where, str(e))
        fpr = cert.fingerprint
        for field, found in [("fingerprint", fpr), ("subkey", subkey)]:
            if loc[field] != found:
                raise fail(what, f"{field} {loc[field]}, but {where} gives {found}")
        old = next((o for o in known if o["location_cert"].fingerprint == fpr), None)
        if old is not None:
            raise fail(what, f"the location certificate {fpr} is holder {old['index']}'s of "
                       "this ceremony already: a reshare's keys are new")
        if fpr in new_fprs:
            raise fail(what, f"the location certificate {fpr} is another new holder's too")
        new_fprs.append(fpr)

        what = rec_name(sseq, "recovery.new-sealed")
        if sl["holder"] != i:
            raise fail(what, f"holder={sl['holder']}, where holder {i} is, in order")
        if sl["sha256"] != s["message_sha256"]:
            raise fail(what, f"sha256 {sl['sha256']}, but {where}'s message has SHA-256 "
                       f"{s['message_sha256']}")
        try:
            recipients = sorted(set(message_recipients(s["message"])))
        except PgpError as e:
            raise fail(where, str(e))
        subkey_id = next((k.keyid for k in cert.all_keys()[1:] if k.fingerprint == subkey), "")
        if recipients != [subkey_id]:
            raise fail(where, f"encrypted to key ID(s) {','.join(recipients)}, not to its "
                       f"location key's {subkey_id} alone")

    # recovery.new-subsets: as verify.subsets, for M'-of-N'.
    seq, ns = once(r.new_subsets, "recovery.new-subsets")
    m = new_plan.threshold
    total = math.comb(n, m)
    total_text = "over-2^128" if total >= 2**128 - 1 else str(total)
    if total >= 2**128 - 1:
        total = 2**128 - 1
    exhaustive = total <= EXHAUSTIVE_BOUND
    if ns["policy"] == "all":
        policy_ok = exhaustive and ns["checked"] == total
    else:
        policy_ok = not exhaustive and ns["checked"] == n + RANDOM_SUBSETS
    if str(ns["total"]) != total_text or not policy_ok or ns["second"] == "" \
            or ns["combinations"] < ns["checked"]:
        raise fail(rec_name(seq, "recovery.new-subsets"),
                   f"checked={ns['checked']} total={ns['total']} policy={ns['policy']} "
                   f"combinations={ns['combinations']}, but {m}-of-{n} has {total} subsets (all "
                   f"checked up to {EXHAUSTIVE_BOUND}, else the {n} windows and {RANDOM_SUBSETS} "
                   "random ones), each combined by both implementations")

    # recovery.old-shares: the plan reshared (the current plan before this reshare).
    seq, os_ = once(r.old_shares, "recovery.old-shares")
    for field, expected in [("plan", old_plan.hash), ("threshold", old_plan.threshold),
                            ("holders", len(old_plan.holders))]:
        if str(os_[field]) != str(expected):
            raise fail(rec_name(seq, "recovery.old-shares"), f"{field}={os_[field]}, but the "
                       f"pinned plan (the one reshared) gives {expected}")

    # recovery.new-card: each new holder's cards, once each, none a card of the ceremony.
    serials, seen, cards = [], set(), {}
    for seq, c in r.new_cards:
        what = rec_name(seq, "recovery.new-card")
        if not 1 <= c["holder"] <= n:
            raise fail(what, f"holder={c['holder']}, not a holder of the new plan")
        h = new_plan.holders[c["holder"] - 1]
        if not 1 <= c["card"] <= h["cards"] or (c["holder"], c["card"]) in seen:
            raise fail(what, f"card={c['card']} of holder {c['holder']}, who gets cards "
                       f"1..={h['cards']} once each")
        seen.add((c["holder"], c["card"]))
        fpr = new_fprs[c["holder"] - 1]
        if c["location"] != fpr:
            raise fail(what, f"location {c['location']}, but holder {c['holder']}'s new location "
                       f"certificate is {fpr}")
        if c["serial"] in serials:
            raise fail(what, f"serial {c['serial']} twice: each new card is a different card")
        owner = pinned.card_with_serial(c["serial"])
        if owner is not None:
            raise fail(what, f"serial {c['serial']} is holder {owner[0]}'s card {owner[1]} of "
                       "this ceremony already: a reshare's cards are new cards")
        serials.append(c["serial"])
        cards.setdefault(c["holder"], []).append((c["card"], c["serial"]))
    planned_cards = sum(h["cards"] for h in new_plan.holders)
    if len(seen) != planned_cards:
        raise missing_record(f"{len(r.new_cards)} recovery.new-card records, the new plan has "
                             f"{planned_cards} cards")

    # recovery.new-pins: each new holder's PIN file, to them and their backup.
    pins = {}
    for h, (seq, pn) in zip(new_plan.holders, r.new_pins):
        i, what = h["index"], rec_name(seq, "recovery.new-pins")
        if pn["holder"] != i:
            raise fail(what, f"holder={pn['holder']}, where holder {i} is, in order")
        pins_path = f"pins/holder-{i:03d}.asc"
        pin_file = listed[pins_path]
        digest = hashlib.sha256(pin_file).hexdigest()
        if pn["sha256"] != digest:
            raise fail(what, f"sha256 {pn['sha256']}, but {pins_path} has SHA-256 {digest}")
        backup = new_plan.holders[h["backup"] - 1]
        certs = h["certs"] + backup["certs"]
        planned = [c.fingerprint for c in certs]
        if pn["recipients"] != planned:
            raise fail(what, f"recipients {','.join(pn['recipients'])}, but the new plan's "
                       f"personal certificates of holder {i}, then of backup holder "
                       f"{backup['index']}, are {','.join(planned)}")
        try:
            found = sorted(set(message_recipients(dearmor(pin_file, "PGP MESSAGE"))))
        except PgpError as e:
            raise fail(pins_path, str(e))
        expected = sorted({k.keyid for c in certs
                           for k in c.cert.encryption_keys(new_plan.time)})
        if found != expected:
            raise fail(pins_path, f"encrypted to key ID(s) {','.join(found)}, but the encryption "
                       f"keys of the new plan's holder {i}'s and backup holder "
                       f"{backup['index']}'s personal certificates are {','.join(expected)}")
        pins[i] = digest

    lines = [
        f"plan.toml: the new plan {new_plan.hash}, {m}-of-{n} (was {old_plan.threshold}-of-"
        f"{len(old_plan.holders)})",
        f"shards.toml: {n} new shares under new location keys, the same root and key time",
        f"recorded: {ns['checked']} of {ns['total']} {m}-subsets of the new shares recombined at "
        f"the ceremony (with {ns['second']}; shares cannot be checked offline)",
        f"new cards: {', '.join(serials)}",
        f"the old shares ({old_plan.threshold}-of-{len(old_plan.holders)}) still recombine to "
        "this root outside sherd until the old cards are destroyed",
    ]
    return lines, {"plan": new_plan, "shards": shards, "pins": pins,
                   "cards": {h: [serial for _, serial in sorted(cs)]
                             for h, cs in cards.items()}}


def check_new_shards(base, shards, holder, fpr, sealed_digest):
    """The new shard file is the pinned one (`base`), field by field and share by share,
    except holder `holder`'s share: its location certificate is `fpr` and its message has
    SHA-256 `sealed_digest`."""
    def bad(reason):
        return recovery_failure("operation", "shards.toml", reason)

    for field in ("ceremony_id", "plan_hash", "threshold", "count", "key_time",
                  "root_fingerprint"):
        expected, found = getattr(base, field), getattr(shards, field)
        if str(expected) != str(found):
            raise bad(f"{field} {found}, but the pinned shard file's is {expected}")
    if len(base.shares) != len(shards.shares):
        raise bad(f"shares {len(shards.shares)}, but the pinned shard file's is "
                  f"{len(base.shares)}")
    for b, s in zip(base.shares, shards.shares):
        if b["index"] != s["index"] or b["holder"] != s["holder"]:
            raise bad(f"share {s['index']} is holder {s['index']} ({rq(s['holder'])}), the "
                      f"pinned shard file's is {b['index']} ({rq(b['holder'])})")
        if s["index"] == holder:
            want_cert, want_sha, whose = fpr, sealed_digest, "the new one"
        else:
            want_cert, want_sha = b["location_cert"].fingerprint, b["message_sha256"]
            whose = "the pinned shard file's (only the replaced holder's share changes)"
        if s["location_cert"].fingerprint != want_cert:
            raise bad(f"share {s['index']}'s location certificate is "
                      f"{s['location_cert'].fingerprint}, but {whose} is {want_cert}")
        if s["message_sha256"] != want_sha:
            raise bad(f"share {s['index']}'s message has SHA-256 {s['message_sha256']}, but "
                      f"{whose} has {want_sha}")


def recovery_report_lines(folder, generation, r, replaced=()):
    out = [f"PASS {folder}",
           f"generation folder: {generation} (passes sherd-verify)"]
    out += [f"replaced ({i + 1}):      {f} (a {op} recovery, passes against the folders "
            "before it)" for i, (f, op) in enumerate(zip(replaced, r["applied"]))]
    out += [f"ceremony:          {r['ceremony_id']}",
           f"root fingerprint:  {r['root_fingerprint']}",
           f"generation hash:   {r['generation_final_hash']}",
           f"generation words:  {r['generation_final_words']}",
           f"operation:         {r['operation']}",
           f"request hash:      {r['request_hash']}",
           f"request words:     {r['request_words']}",
           f"request time:      {r['request_time']}",
           f"policy:            {r['policy']}",
           f"holders used:      {len(r['holders'])} of threshold {r['threshold']}: "
           + ", ".join(f"{i} ({name})" for i, name in r["holders"])]
    first = {"replace-card": "replaced:", "reshare": "reshared:"}.get(r["operation"],
                                                                       "signatures:")
    for i, line in enumerate(r["operation_lines"]):
        out.append(f"{first if i == 0 else '':<19}{line}")
    out += [f"outputs:           {len(r['outputs'])} files checked: {', '.join(r['outputs'])}",
            f"transcript:        {r['records']} records, signed by the root key",
            f"final hash:        {r['final_hash']}",
            f"final hash words:  {r['final_words']}",
            "Compare the final hash words with those the witnesses wrote down at the recovery, "
            "and the generation words with those of the generation ceremony."]
    return out


# =============================================================================================
# 10. Command line
# =============================================================================================


def report_lines(folder, r):
    out = [f"PASS {folder}",
           f"ceremony:          {r['ceremony_id']}",
           f"root fingerprint:  {r['root_fingerprint']}",
           f"threshold:         {r['threshold']} of {r['count']}",
           f"cards:             {r['cards']}",
           f"plan hash:         {r['plan_hash']}",
           f"transcript:        {r['records']} records, signed by the root key",
           f"files checked:     {r['files_checked']}"]
    q = r["quote"]
    if q[0] == "not-recorded":
        out.append("TPM quote:         not recorded")
    elif q[0] == "not-made":
        out.append(f"TPM quote:         none ({q[1]})")
    elif q[0] == "failed":
        out.append(f"TPM quote:         FAILED ({q[2]}); key {q[1]}; the witnesses recorded a "
                   "deviation (below)")
    else:
        out.append("TPM quote:         verified: PCR 0-7 as recorded and the plan hash, signed by "
                   f"attestation key {q[1]}")
        out.append(f"                   (TPM firmware {q[2]}; EK certificate "
                   f"{'recorded, not checked' if q[3] else 'none'}; the key was made in the TPM "
                   "during the ceremony: compare its name with the one recorded for this "
                   "laptop, if any)")
    e = r["entropy"]
    if e["basis"] == "not-checked":
        out.append("entropy:           not checked (format 1 records are free text)")
    else:
        out.append(f"entropy:           {len(e['counted'])} source(s) counted as independent "
                   f"hardware: {'; '.join(e['counted'])}")
        if e["basis"] == "counts-only":
            out.append("                   (no entropy.policy record: credit and virtual "
                       "devices were not recorded, only counts checked)")
        if e["virtual_allowed"]:
            out.append("                   VIRTUAL hardware allowed by the plan; counted "
                       f"virtual: {'; '.join(e['counted_virtual']) or 'none'}")
    for i, line in enumerate(boot_lines(r["boot"])):
        out.append(f"{'boot:' if i == 0 else '':<19}{line}")
    out.append(f"dual:              {dual_line(r['dual'], r['header'])}")
    out.append(witness_line(r["witnesses"]))
    out.append(f"final hash:        {r['final_hash']}")
    out.append(f"final hash words:  {r['final_words']}")
    out.append("Compare the final hash words with those the witnesses wrote down.")
    return out


USAGE = ("usage: sherd_verify.py <ceremony-output-folder> [--shares FILE ...]\n"
         "       sherd_verify.py --recovery <recovery-folder> --generation <generation-folder> "
         "[--replaced <replace-card or reshare folder>]... "
         "[--files <folder with the signed files>]")


def recovery_main(args):
    """`--recovery R --generation G [--replaced F]... [--files D]`: each once but --replaced
    (repeated, in the order the replace-card and reshare recoveries were made), in any
    order."""
    given, replaced = {}, []
    it = iter(args)
    for flag in it:
        value = next(it, None)
        if flag == "--replaced" and value is not None:
            replaced.append(value)
            continue
        if flag not in ("--recovery", "--generation", "--files") or value is None \
                or flag in given:
            print(USAGE, file=sys.stderr)
            return 2
        given[flag] = value
    if "--recovery" not in given or "--generation" not in given:
        print(USAGE, file=sys.stderr)
        return 2
    folder, generation = given["--recovery"], given["--generation"]
    try:
        r = verify_recovery(folder, generation, given.get("--files"), replaced)
    except Failure as e:
        print(f"FAIL {folder}: {e}")
        return 1
    except Exception as e:  # a bug here, or input no check above anticipated: still a FAIL
        import traceback
        traceback.print_exc()
        print(f"FAIL {folder}: unexpected {type(e).__name__} in this verifier: {e}")
        return 1
    print("\n".join(recovery_report_lines(folder, generation, r, replaced)))
    return 0


def main(argv):
    args = list(argv)
    if args and args[0] in ("--recovery", "--generation", "--files", "--replaced"):
        return recovery_main(args)
    shares = []
    if "--shares" in args:
        i = args.index("--shares")
        shares = args[i + 1 :]
        args = args[:i]
        if not shares:
            print(USAGE, file=sys.stderr)
            return 2
    if len(args) != 1 or args[0].startswith("--"):
        print(USAGE, file=sys.stderr)
        return 2
    folder = args[0]
    try:
        with open(os.path.join(folder, "transcript.txt"), "rb") as f:
            recovery = is_recovery_transcript(f.read())
    except OSError:
        recovery = False
    if recovery:
        print(f"FAIL {folder}: a recovery folder (its transcript's record 1 is "
              "recovery.generation): verify it against the generation folder it used, with "
              f"sherd-verify --recovery {folder} --generation <generation-folder>")
        return 1
    try:
        r = verify_folder(folder)
        s = check_shares(r, shares) if shares else None
    except Failure as e:
        print(f"FAIL {folder}: {e}")
        return 1
    except Exception as e:  # a bug here, or input no check above anticipated: still a FAIL
        import traceback
        traceback.print_exc()
        print(f"FAIL {folder}: unexpected {type(e).__name__} in this verifier: {e}")
        return 1
    lines = report_lines(folder, r)
    if shares:
        lines.insert(-3, f"shares:            {len(shares)} given; shares "
                     f"{', '.join(map(str, s['used']))} recombine to the committed secret, which "
                     f"derives root key {r['root_fingerprint']} (subkey {s['subkey']})")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
