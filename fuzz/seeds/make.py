#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz corpus (fuzz/corpus/<target>/seed-*): RFC 4733 payloads, RTP
headers, fmtp lists, pcap and pcapng captures of a DTMF digit in every link layer and block type the
reader knows, small WAV files of a digit in every sample format, and the selector-prefixed request
bodies of http_body. The SDP offers of sdp_offer and http_body are made by `cargo run --example offers`
in fuzz/ (browser-shaped offers edited from Peer::create_offer output) and kept as files."""
import math
import os
import struct
import sys

root = os.environ.get("SEEDS_OUT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# --- telephone_event: 4-byte payloads (digit, end, volume, duration), and a longer one
def te(event, end, volume, duration):
    return bytes([event, (0x80 if end else 0) | volume, duration >> 8, duration & 0xFF])


for name, p in {
    "digit5": te(5, False, 10, 160),
    "hash-end": te(11, True, 10, 4800),
    "rbit": bytes([1, 0x4A, 0, 160]),
    "long": te(3, False, 63, 0xFFFF) + te(4, True, 0, 1),
    "short": b"\x01\x02\x03",
}.items():
    put("telephone_event", name, p)


# --- rtp_header
def rtp(pt, seq, ts, ssrc, payload, marker=False, csrc=0, ext=None, pad=0):
    b0 = 0x80 | csrc | (0x10 if ext is not None else 0) | (0x20 if pad else 0)
    h = struct.pack(">BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    h += b"\0\0\0\x01" * csrc
    if ext is not None:
        h += struct.pack(">HH", 0xBEDE, len(ext) // 4) + ext
    body = payload
    if pad:
        body += b"\0" * (pad - 1) + bytes([pad])
    return h + body


for name, p in {
    "plain": rtp(101, 7, 160, 0xABCD, te(5, False, 10, 160), marker=True),
    "csrc-ext-pad": rtp(101, 8, 160, 0xABCD, te(5, True, 10, 800), csrc=2, ext=b"\x10\xff\0\0", pad=4),
    "opus": rtp(111, 9, 960, 0x1234, bytes(range(40))),
    "rtcp": bytes([0x80, 0xC8]) + b"\0" * 26,
}.items():
    put("rtp_header", name, p)

# --- event_set
for i, v in enumerate(["0-15", "0-15,66,70", "0-11,16", "15,3-14,0,1,2", " 0 - 15 , 16 ", "", "0-256", "300", "1-15,32-41"]):
    put("event_set", str(i), v)


# --- capture: one digit "5" (8000 Hz telephone-event, PT 101): three updates and three end packets
def digit_packets(pt=101, ssrc=0x11223344, ts=16000, start_seq=100):
    out = []
    seq = start_seq
    for i, (dur, end) in enumerate([(160, 0), (320, 0), (480, 0), (640, 1), (640, 1), (640, 1)]):
        out.append((i * 0.02, rtp(pt, seq, ts, ssrc, te(5, end, 10, dur), marker=(i == 0))))
        seq += 1
    return out


def ip4_udp(payload, src="\x0a\0\0\x01", dst="\x0a\0\0\x02", sport=40000, dport=50000):
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src.encode("latin1"), dst.encode("latin1"))
    return ip + udp


def ip6_udp(payload):
    udp = struct.pack(">HHHH", 40000, 50000, 8 + len(payload), 0) + payload
    return struct.pack(">IHBB", 0x60000000, len(udp), 17, 64) + b"\0" * 15 + b"\1" + b"\0" * 15 + b"\2" + udp


def ether(ip, v6=False):
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + (b"\x86\xdd" if v6 else b"\x08\x00") + ip


def legacy_pcap(frames, linktype=1, nanos=False, big=False):
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for t, f in frames:
        sec = 1700000000 + int(t)
        frac = int((t % 1) * (1e9 if nanos else 1e6))
        out += struct.pack(e + "IIII", sec, frac, len(f), len(f)) + f
    return out


def pcapng_block(btype, body, big=False):
    e = ">" if big else "<"
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def pcapng(frames, linktype=1, big=False, tsresol=None, simple=False, obsolete=False):
    e = ">" if big else "<"
    out = pcapng_block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), big)
    opts = b""
    if tsresol is not None:
        opts = struct.pack(e + "HH", 9, 1) + bytes([tsresol, 0, 0, 0]) + struct.pack(e + "HH", 0, 0)
    out += pcapng_block(1, struct.pack(e + "HHI", linktype, 0, 65535) + opts, big)
    per_sec = 10**6 if tsresol is None else (2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10 ** tsresol)
    for t, f in frames:
        ts = int((1700000000 + t) * per_sec)
        if simple:
            out += pcapng_block(3, struct.pack(e + "I", len(f)) + f, big)
        elif obsolete:
            out += pcapng_block(2, struct.pack(e + "HHIIII", 0, 0, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f, big)
        else:
            out += pcapng_block(6, struct.pack(e + "IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f, big)
    return out


pk = digit_packets()
eth4 = [(t, ether(ip4_udp(p))) for t, p in pk]
put("capture", "pcap-ether", legacy_pcap(eth4))
put("capture", "pcap-ns-be", legacy_pcap(eth4, nanos=True, big=True))
put("capture", "pcap-raw-ip6", legacy_pcap([(t, ip6_udp(p)) for t, p in pk], linktype=101))
put("capture", "pcap-null", legacy_pcap([(t, struct.pack("<I", 2) + ip4_udp(p)) for t, p in pk], linktype=0))
put("capture", "pcap-sll", legacy_pcap([(t, struct.pack(">HHH8sH", 0, 1, 6, b"\2\0\0\0\0\1\0\0", 0x0800) + ip4_udp(p)) for t, p in pk], linktype=113))
vlan = [(t, b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x81\x00\x00\x05\x08\x00" + ip4_udp(p)) for t, p in pk]
put("capture", "pcap-vlan", legacy_pcap(vlan))
put("capture", "pcapng-epb", pcapng(eth4))
put("capture", "pcapng-be-tsresol2", pcapng(eth4, big=True, tsresol=0x94))
put("capture", "pcapng-spb", pcapng(eth4, simple=True))
put("capture", "pcapng-obsolete", pcapng(eth4, obsolete=True, tsresol=9))
put("capture", "pcapng-two-sections", pcapng(eth4[:3]) + pcapng(eth4[3:], big=True))
put("capture", "magic-pcap", struct.pack("<I", 0xA1B2C3D4))
put("capture", "magic-pcapng", b"\x0a\x0d\x0d\x0a")


# --- wav: a 50 ms "1" and 20 ms of silence at -10 dBm0-ish, in every format the reader takes
def tone(rate, ms=50, gap=20, f=(697.0, 1209.0), amp=0.25):
    n = rate * ms // 1000
    s = [amp * (math.sin(2 * math.pi * f[0] * i / rate) + math.sin(2 * math.pi * f[1] * i / rate)) for i in range(n)]
    return s + [0.0] * (rate * gap // 1000)


def ulaw(x):
    v = int(max(-1, min(1, x)) * 32767)
    sign = 0x80 if v < 0 else 0
    v = min(abs(v), 32635) + 0x84
    exp = max(0, v.bit_length() - 8)
    mant = (v >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def alaw(x):
    v = int(max(-1, min(1, x)) * 32767) >> 3
    sign = 0x80 if v >= 0 else 0
    v = abs(v)
    if v < 32:
        enc = v >> 1
    else:
        exp = min(7, v.bit_length() - 5)
        enc = (exp << 4) | ((v >> exp) & 0x0F)
    return (enc | sign) ^ 0x55


def wav(samples, rate, tag, bits, channels=1, extensible=False, unknown_len=False):
    def enc(x):
        if tag == 1 and bits == 8:
            return bytes([int(128 + x * 127)])
        if tag == 1:
            return int(x * (2 ** (bits - 1) - 1)).to_bytes(bits // 8, "little", signed=True)
        if tag == 3:
            return struct.pack("<f" if bits == 32 else "<d", x)
        return bytes([ulaw(x) if tag == 7 else alaw(x)])

    data = b"".join(enc(x) * channels for x in samples)
    align = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHIH14s", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 0, tag, b"\0\0\0\0\x10\0\x80\0\0\xaa\0\x38\x9b\x71")
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    size = 0xFFFFFFFF if unknown_len else len(data)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"LIST\4\0\0\0INFO" + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


s8 = tone(8000)
for name, args in {
    "pcm8": (8000, 1, 8),
    "pcm16": (8000, 1, 16),
    "pcm24": (8000, 1, 24),
    "pcm32": (8000, 1, 32),
    "float32": (8000, 3, 32),
    "float64": (8000, 3, 64),
    "ulaw": (8000, 7, 8),
    "alaw": (8000, 6, 8),
}.items():
    put("wav", name, wav(s8, *args))
put("wav", "pcm16-stereo-ext", wav(s8, 8000, 1, 16, channels=2, extensible=True))
put("wav", "pcm16-16k-unknown-len", wav(tone(16000, ms=45, gap=5), 16000, 1, 16, unknown_len=True))
put("wav", "truncated", wav(s8, 8000, 1, 16)[:300])

# --- http_body: selector byte (see fuzz_targets/http_body.rs) + body
put("http_body", "dtmf-json", b"\x41" + b'{"tones":"123#","duration":100,"gap":70}')
put("http_body", "dtmf-json-bad-tone", b"\x45" + b'{"tones":"12x","duration":40}')
put("http_body", "dtmf-json-unknown-call", b"\x01" + b'{"tones":"1"}')
put("http_body", "dtmf-json-locked", b"\xc1" + b'{"tones":"9","duration":6000,"gap":30}')
put("http_body", "events-token", b"\xc2" + b"access_token=s%33cret\n3")
put("http_body", "events-open", b"\x42" + b"\n0")
put("http_body", "hangup", b"\x03" + b"abc")
put("http_body", "offer-wrong-type", b"\x08" + b"v=0\r\n")
put("http_body", "offer-too-large", b"\x30" + b"v=0\r\n")
