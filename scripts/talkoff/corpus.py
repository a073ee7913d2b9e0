#!/usr/bin/python3
"""Builds the talk-off corpus (audio with no DTMF in it) from Debian packages; see scripts/make-talkoff-corpus.

Every file is 8 kHz 16-bit mono PCM (`NAME.wav`), with its G.711 round trips beside it (`NAME.ulaw.wav`,
`NAME.alaw.wav`, encoded by sox). The directory under the corpus root names the kind of content. All random
choices come from seeded generators, so a run with the same packages gives the same files.
"""

import hashlib
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import wave

import numpy as np

RATE = 8000
# Bump to regenerate caches when the recipe changes without this file changing meaningfully.
RECIPE = 1
PACKAGES = ["espeak-ng", "mbrola", "flite", "festival", "libttspico-utils", "fluidsynth", "fluid-soundfont-gm",
            "timgm6mb-soundfont", "sox", "wesnoth-1.16-music", "extremetuxracer-data", "frozen-bubble-data"]
SOUNDFONTS = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2"]
RECORDED = ["/usr/share/games/wesnoth/1.16/data/core/music", "/usr/share/games/etr/music",
            "/usr/share/games/frozen-bubble/snd"]


def run(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def to_8k(src, dst, peak_db):
    """Any audio file to 8 kHz 16-bit mono, peak-normalised to `peak_db` dBFS (no dither: deterministic)."""
    run(["sox", "-D", src, "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", dst,
         "remix", "-", "norm", f"{peak_db:.1f}"])


def write_wav(path, x, peak_db=None):
    x = np.asarray(x, dtype=np.float64)
    if peak_db is not None:
        m = np.max(np.abs(x)) or 1.0
        x = x / m * 10 ** (peak_db / 20)
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768


class Corpus:
    def __init__(self, root):
        self.root = root
        self.tmp = tempfile.mkdtemp(prefix="talkoff-")

    def path(self, kind, name):
        d = os.path.join(self.root, kind)
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, name.replace(".", "_") + ".wav")

    def tmpfile(self, name):
        return os.path.join(self.tmp, name)

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- speech

def texts():
    words = []
    for f in ["GPL-3", "Apache-2.0", "MPL-2.0", "GFDL-1.3", "LGPL-2.1", "Artistic", "CC0-1.0"]:
        with open(os.path.join("/usr/share/common-licenses", f), encoding="utf-8", errors="replace") as fh:
            words += [w for w in fh.read().split() if any(c.isalpha() for c in w)]
    return words


IVR = [
    "Thank you for calling. Please enter your account number followed by the pound key.",
    "Press one for sales, two for support, three for billing, nine to repeat this menu, or zero for an operator.",
    "Your balance is one thousand two hundred and forty seven dollars and sixty nine cents.",
    "I said eight eight five, four nine two, six one six zero. Can you read that back to me?",
    "Hello? Hello! Yes, hi, it's me. Can you hear me now? The line keeps breaking up.",
    "Oh no, no, no. Whee! Ooh, aah, mmm hmm, yeah yeah yeah. Okay, bye bye!",
    "Meet me at nine fifteen on the seventh floor, room seven oh four.",
]


def speech_chunks(words, rng, n_words):
    start = rng.randrange(len(words))
    chunk = [words[(start + i) % len(words)] for i in range(n_words)]
    text = " ".join(chunk)
    return rng.choice(IVR) + " " + text + " " + rng.choice(IVR)


def espeak_variants():
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = []
    for line in out.splitlines()[1:]:
        f = line.split()[-1]
        if f.startswith("!v/"):
            names.append(f[3:])
    return sorted(n for n in names if " " not in n)


def gen_espeak(c, words):
    rng = random.Random("espeak")
    langs = ["en", "en-us", "en-gb-scotland", "en-029", "en-gb-x-rp", "de", "fr", "es", "it", "pt-br", "nl",
             "pl", "sv", "ru", "hi", "cmn", "ja", "ar", "tr", "fi", "el", "vi", "sw", "hu", "cs", "ko"]
    variants = espeak_variants()
    high = [v for v in variants if v.lower() in {"f1", "f2", "f3", "f4", "f5", "annie", "belinda", "linda",
                                                   "aunty", "alicia", "andrea", "steph", "steph2", "steph3",
                                                   "tweaky", "anika", "grandma"}]
    for i in range(72):
        lang = langs[i % len(langs)] if i % 3 else "en"
        if i % 4 == 1 and high:
            var = high[(i // 4) % len(high)]
            pitch = rng.randint(80, 99)  # children's and high female voices
        else:
            var = variants[(i * 7) % len(variants)]
            pitch = rng.randint(0, 99)
        speed = rng.choice([80, 110, 140, 175, 210, 260, 320, 400])
        text = speech_chunks(words, rng, int(speed * 0.8))
        wav = c.tmpfile("espeak.wav")
        run(["espeak-ng", "-v", f"{lang}+{var}", "-s", str(speed), "-p", str(pitch), "-w", wav, text])
        to_8k(wav, c.path("speech-espeak", f"{i:02}-{lang}-{var}-s{speed}-p{pitch}"), -rng.uniform(1, 6))


def gen_mbrola(c, words):
    rng = random.Random("mbrola")
    voices = ["mb-us1", "mb-us2", "mb-us3", "mb-en1", "mb-de1-en", "mb-de2-en", "mb-fr1-en", "mb-fr4-en",
              "mb-hu1-en", "mb-nl2-en", "mb-pl1-en", "mb-sw1-en", "mb-de1", "mb-fr1", "mb-es1", "mb-it3",
              "mb-br1", "mb-cz2"]
    for i, v in enumerate(voices):
        speed = rng.choice([100, 140, 175, 220, 300])
        pitch = rng.choice([10, 30, 50, 70, 90, 99])
        text = speech_chunks(words, rng, int(speed * 1.0))
        wav = c.tmpfile("mbrola.wav")
        try:
            run(["espeak-ng", "-v", v, "-s", str(speed), "-p", str(pitch), "-w", wav, text])
        except subprocess.CalledProcessError:
            print(f"   (mbrola voice {v} failed, skipped)")
            continue
        to_8k(wav, c.path("speech-mbrola", f"{i:02}-{v}-s{speed}-p{pitch}"), -rng.uniform(1, 6))


def gen_flite(c, words):
    rng = random.Random("flite")
    voices = ["kal", "kal16", "awb", "rms", "slt"]
    for i in range(20):
        v = voices[i % len(voices)]
        stretch = rng.choice([0.65, 0.8, 1.0, 1.25, 1.6])
        f0 = rng.choice([80, 110, 140, 180, 220, 260, 300])
        text = speech_chunks(words, rng, int(140 / stretch))
        wav = c.tmpfile("flite.wav")
        run(["flite", "-voice", v, "--setf", f"duration_stretch={stretch}", "--setf",
             f"int_f0_target_mean={f0}", "-t", text, "-o", wav])
        to_8k(wav, c.path("speech-flite", f"{i:02}-{v}-x{stretch}-f{f0}"), -rng.uniform(1, 6))


def gen_festival(c, words):
    rng = random.Random("festival")
    voices = ["kal_diphone", "cmu_us_slt_arctic_hts"]
    for i in range(12):
        v = voices[i % 2]
        stretch = rng.choice([0.7, 0.85, 1.0, 1.2, 1.5])
        txt = c.tmpfile("festival.txt")
        with open(txt, "w") as fh:
            fh.write(speech_chunks(words, rng, int(130 / stretch)))
        wav = c.tmpfile("festival.wav")
        run(["text2wave", "-eval", f"(voice_{v})", "-eval", f"(Parameter.set 'Duration_Stretch {stretch})",
             txt, "-o", wav])
        to_8k(wav, c.path("speech-festival", f"{i:02}-{v}-x{stretch}"), -rng.uniform(1, 6))


def gen_pico(c, words):
    rng = random.Random("pico")
    langs = ["en-US", "en-GB", "de-DE", "es-ES", "fr-FR", "it-IT"]
    for i in range(18):
        lang = langs[i % len(langs)]
        pitch = rng.choice([60, 80, 100, 125, 150, 180])
        speed = rng.choice([60, 80, 100, 130, 170])
        parts = []
        for k in range(3):  # pico2wave takes a limited text per call
            wav = c.tmpfile(f"pico{k}.wav")
            text = speech_chunks(words, rng, 40)
            run(["pico2wave", "-l", lang, "-w", wav,
                 f'<pitch level="{pitch}"><speed level="{speed}">{text}</speed></pitch>'])
            parts.append(wav)
        cat = c.tmpfile("pico.wav")
        run(["sox"] + parts + [cat])
        to_8k(cat, c.path("speech-pico", f"{i:02}-{lang}-p{pitch}-s{speed}"), -rng.uniform(1, 6))


# --------------------------------------------------------------------------------------------- singing

NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def midi_hz(n):
    return 440.0 * 2 ** ((n - 69) / 12)


def note_name(n):
    return f"{NOTE_NAMES[n % 12]}{n // 12 - 1}"


def melody(rng, lo, hi, count, traps=()):
    """A random walk over a major or minor scale in lo..hi (MIDI numbers), with trap notes mixed in."""
    key = rng.randrange(12)
    steps = rng.choice([[0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10], [0, 2, 4, 7, 9]])
    scale = [n for n in range(lo, hi + 1) if (n - key) % 12 in steps]
    i = rng.randrange(len(scale))
    out = []
    for _ in range(count):
        if traps and rng.random() < 0.2:
            t = [n for n in traps if lo <= n <= hi]
            if t:
                out.append(rng.choice(t))
                continue
        i = max(0, min(len(scale) - 1, i + rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3, 4])))
        out.append(scale[i])
    return out


# Notes whose harmonics fall near DTMF pairs: G#5 (830.6 Hz, 2nd harmonic 1661), A#5, F5, G5, G#4 (415,
# 2nd-4th harmonics 830/1246/1661), G#3 and A3 (207.7/220: 4th and 7th harmonics near 852/1477), C#4/D4.
TRAPS = [80, 82, 77, 79, 68, 56, 57, 61, 62, 44, 45, 92, 89]

VOWELS = {  # formant frequencies and bandwidths (Hz)
    "a": ([800, 1150, 2800, 3500], [80, 90, 120, 130]),
    "e": ([400, 1600, 2700, 3300], [60, 80, 120, 150]),
    "i": ([270, 2140, 2950, 3500], [60, 90, 100, 120]),
    "o": ([450, 800, 2830, 3500], [70, 80, 100, 130]),
    "u": ([325, 700, 2530, 3500], [50, 60, 170, 180]),
    "ae": ([660, 1700, 2400, 3400], [80, 90, 120, 130]),
    "m": ([250, 1100, 2300, 3300], [60, 300, 300, 400]),
}


def formant_gain(f, formants, bws):
    g = np.ones_like(f)
    for F, B in zip(formants, bws):
        g *= F * F / np.sqrt((F * F - f * f) ** 2 + (B * f) ** 2)
    return g


def sing(rng, notes, durs, vowels, vibrato_hz, vibrato_depth, tilt, legato):
    """Additive source-filter singing: harmonics of a glottal source through vowel formants."""
    n = sum(int(d * RATE) for d in durs)
    f0 = np.zeros(n)
    amp = np.zeros(n)
    fm = np.zeros((4, n))
    bw = np.zeros((4, n))
    pos = 0
    for note, d, v in zip(notes, durs, vowels):
        k = int(d * RATE)
        f0[pos:pos + k] = midi_hz(note)
        env = np.ones(k)
        a = int(rng.uniform(0.02, 0.08) * RATE)
        r = int((0.01 if legato else rng.uniform(0.03, 0.15)) * RATE)
        env[:a] = np.linspace(0, 1, a) if a else 1
        if not legato:
            env[k - r:] = np.linspace(1, 0, r)
        amp[pos:pos + k] = env * rng.uniform(0.6, 1.0)
        F, B = VOWELS[v]
        fm[:, pos:pos + k] = np.array(F)[:, None] * rng.uniform(0.92, 1.08)
        bw[:, pos:pos + k] = np.array(B)[:, None]
        pos += k
    # Portamento and formant transitions: smooth over ~40 ms.
    w = np.hanning(int(0.04 * RATE))
    w /= w.sum()
    f0 = np.convolve(np.pad(f0, len(w), mode="edge"), w, mode="same")[len(w):-len(w)]
    for j in range(4):
        fm[j] = np.convolve(np.pad(fm[j], len(w), mode="edge"), w, mode="same")[len(w):-len(w)]
    t = np.arange(n) / RATE
    vib = 1 + vibrato_depth * np.sin(2 * np.pi * vibrato_hz * t + rng.uniform(0, 6)) * np.minimum(1, t / 0.3)
    jitter = 1 + 0.002 * np.convolve(np.random.default_rng(rng.randrange(1 << 30)).standard_normal(n),
                                     np.ones(200) / 200 ** 0.5, mode="same")
    f = f0 * vib * jitter
    phase = 2 * np.pi * np.cumsum(f) / RATE
    out = np.zeros(n)
    for h in range(1, int(3900 / max(60, f.min())) + 1):
        fh = f * h
        g = np.where(fh < 3900, 1.0, 0.0) / h ** tilt
        gain = np.ones(n)
        for j in range(4):
            gain *= fm[j] ** 2 / np.sqrt((fm[j] ** 2 - fh ** 2) ** 2 + (bw[j] * fh) ** 2)
        out += g * gain * np.sin(h * phase)
    return out * amp


def gen_singing(c, words):
    rng = random.Random("singing")
    ranges = {"bass": (40, 64), "tenor": (48, 72), "alto": (53, 77), "soprano": (60, 84), "child": (60, 86)}
    vnames = list(VOWELS)
    for i in range(36):
        voice = list(ranges)[i % len(ranges)]
        lo, hi = ranges[voice]
        parts = []
        total = 0.0
        while total < 40:
            count = rng.randint(6, 16)
            notes = melody(rng, lo, hi, count, TRAPS)
            durs = [rng.choice([0.15, 0.25, 0.4, 0.6, 0.8, 1.2, 2.0]) for _ in notes]
            vowels = [rng.choice(vnames) for _ in notes]
            choir = i % 6 == 5
            x = sing(rng, notes, durs, vowels, rng.uniform(4.5, 6.8), rng.choice([0, 0.004, 0.01, 0.02]),
                     rng.uniform(0.8, 1.6), rng.random() < 0.5)
            if choir:  # a few singers, slightly apart in pitch and time, some an octave or a third off
                for _ in range(rng.randint(2, 5)):
                    shift = rng.choice([0, 0, 12, -12, 4, 7])
                    y = sing(rng, [min(hi, max(lo, n + shift)) for n in notes], durs, vowels,
                             rng.uniform(4.5, 6.8), rng.choice([0.004, 0.01, 0.02]), rng.uniform(0.8, 1.6), True)
                    x = x + np.roll(y, rng.randint(0, 400)) * rng.uniform(0.5, 1.0)
            parts.append(x / (np.max(np.abs(x)) or 1))
            parts.append(np.zeros(int(rng.uniform(0.1, 0.8) * RATE)))
            total += sum(durs)
        kind = "choir" if i % 6 == 5 else voice
        write_wav(c.path("singing-formant", f"{i:02}-{kind}"), np.concatenate(parts), -rng.uniform(1, 4))
    # Festival's singing mode: lyrics on notes, diphone voice.
    for i in range(20):
        lo, hi = [(45, 69), (52, 76), (57, 81), (62, 86)][i % 4]
        notes = melody(rng, lo, hi, 48, TRAPS)
        bpm = rng.choice([60, 80, 100, 120])
        body = "".join(
            f'<PITCH NOTE="{note_name(n)}"><DURATION BEATS="{rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])}">'
            f"{rng.choice(words).strip('.,;:()')}</DURATION></PITCH>\n"
            for n in notes)
        xml = c.tmpfile("song.xml")
        with open(xml, "w") as fh:
            fh.write('<?xml version="1.0"?>\n<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
                     f'"Singing.v0_1.dtd" []>\n<SINGING BPM="{bpm}">\n{body}</SINGING>\n')
        wav = c.tmpfile("song.wav")
        try:
            run(["text2wave", "-mode", "singing", xml, "-o", wav], timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            print(f"   (festival song {i} failed, skipped)")
            continue
        to_8k(wav, c.path("singing-festival", f"{i:02}-bpm{bpm}"), -rng.uniform(1, 4))


# ------------------------------------------------------------------------------------------------ MIDI

def vlq(n):
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def midi_bytes(events, bpm, tpq=480):
    """events: (tick, order, bytes); a format-0 file."""
    events = sorted(events)
    track = b"\x00\xff\x51\x03" + struct.pack(">I", int(60_000_000 / bpm))[1:]
    last = 0
    for t, _, data in events:
        track += vlq(t - last) + data
        last = t
    track += b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(track)) + track


class Song:
    def __init__(self, bpm):
        self.bpm = bpm
        self.ev = []

    def program(self, ch, prog):
        self.ev.append((0, 0, bytes([0xC0 | ch, prog])))

    def note(self, ch, n, start, length, vel=90):
        self.ev.append((start, 2, bytes([0x90 | ch, n, vel])))
        self.ev.append((start + length, 1, bytes([0x80 | ch, n, 0])))

    def render(self, c, sf, dst, peak_db):
        mid = c.tmpfile("song.mid")
        with open(mid, "wb") as fh:
            fh.write(midi_bytes(self.ev, self.bpm))
        wav = c.tmpfile("song.wav")
        run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", "22050", "-F", wav, sf, mid])
        to_8k(wav, dst, peak_db)


# General MIDI programs: the classic traps (near-pure or steady tones) and a few others.
INSTRUMENTS = {"flute": 73, "piccolo": 72, "recorder": 74, "pan-flute": 75, "whistle": 78, "ocarina": 79,
               "church-organ": 19, "drawbar-organ": 16, "reed-organ": 20, "strings": 48, "violin": 40,
               "piano": 0, "music-box": 10, "harmonica": 22, "choir-aahs": 52, "voice-oohs": 53,
               "synth-voice": 54, "lead-square": 80, "lead-sawtooth": 81, "calliope": 82, "celesta": 8,
               "vibraphone": 11, "glockenspiel": 9, "clarinet": 71, "oboe": 68, "trumpet": 56,
               "accordion": 21, "bottle": 76, "shakuhachi": 77, "lead-chiff": 83}


def gen_midi(c):
    rng = random.Random("midi")
    names = list(INSTRUMENTS)
    # Chromatic scans: every note from C4 to C7 held for a second, on each trap instrument.
    for k, name in enumerate(["flute", "whistle", "ocarina", "recorder", "pan-flute", "church-organ",
                              "choir-aahs", "lead-square", "lead-sawtooth", "calliope", "music-box", "harmonica",
                              "strings", "piano", "synth-voice", "clarinet"]):
        sf = SOUNDFONTS[k % 2]
        s = Song(60)
        s.program(0, INSTRUMENTS[name])
        for j, n in enumerate(range(60, 97)):
            s.note(0, n, j * 480, 440, rng.randint(60, 120))
        s.render(c, sf, c.path("music-midi", f"scan-{name}-{os.path.basename(sf)[:6]}"), -rng.uniform(1, 5))
    # Melodies, some over chords or a bass line.
    for i in range(40):
        sf = SOUNDFONTS[i % 2]
        bpm = rng.choice([60, 72, 90, 110, 130, 160])
        s = Song(bpm)
        lead = names[i % len(names)]
        s.program(0, INSTRUMENTS[lead])
        lo, hi = rng.choice([(60, 84), (67, 91), (72, 96), (55, 79)])
        beats = int(45 * bpm / 60)
        notes = melody(rng, lo, hi, beats * 2, TRAPS)
        t = 0
        for n in notes:
            d = rng.choice([240, 240, 480, 480, 720, 960, 1920])
            s.note(0, n, t, int(d * rng.uniform(0.6, 1.0)), rng.randint(50, 120))
            t += d
            if t > beats * 480:
                break
        kind = i % 4
        if kind >= 1:  # chords (triads) on a pad or keyboard
            comp = rng.choice(["strings", "church-organ", "piano", "choir-aahs", "accordion", "drawbar-organ"])
            s.program(1, INSTRUMENTS[comp])
            root = rng.randint(48, 60)
            for b in range(0, beats, 4):
                r = root + rng.choice([0, 5, 7, 9, 2, -3])
                third = rng.choice([3, 4])
                for n in [r, r + third, r + 7] + ([r + 12] if rng.random() < 0.3 else []):
                    s.note(1, n, b * 480, 4 * 480 - 20, rng.randint(40, 90))
        if kind == 3:  # a bass line
            s.program(2, rng.choice([32, 33, 38, 43]))
            for b in range(0, beats, 2):
                s.note(2, rng.randint(28, 43), b * 480, 900, 90)
        s.render(c, sf, c.path("music-midi", f"{i:02}-{lead}-{os.path.basename(sf)[:6]}-bpm{bpm}"),
                 -rng.uniform(1, 5))


def gen_synth(c):
    """Pure sine, square, triangle and sawtooth melodies (one note at a time, no overlap) and glides."""
    rng = random.Random("synth")
    for i, shape in enumerate(["sine", "square", "triangle", "sawtooth"] * 4):
        lo, hi = [(55, 80), (60, 88), (65, 96), (40, 70)][i // 4]
        parts = []
        total = 0
        while total < 40 * RATE:
            n = rng.choice(TRAPS) if rng.random() < 0.3 else rng.randint(lo, hi)
            d = int(rng.choice([0.08, 0.12, 0.2, 0.3, 0.5, 1.0]) * RATE)
            t = np.arange(d) / RATE
            f = midi_hz(n) * (1 + (0.006 * np.sin(2 * np.pi * 5.5 * t) if rng.random() < 0.4 else 0 * t))
            ph = 2 * np.pi * np.cumsum(f) / RATE
            if shape == "sine":
                x = np.sin(ph)
            else:
                x = np.zeros(d)
                for h in range(1, int(3900 / f.max()) + 1):
                    if shape == "square" and h % 2:
                        x += np.sin(h * ph) / h
                    elif shape == "triangle" and h % 2:
                        x += (-1) ** (h // 2) * np.sin(h * ph) / h ** 2
                    elif shape == "sawtooth":
                        x += np.sin(h * ph) / h
            ramp = min(d // 4, 40)
            env = np.ones(d)
            env[:ramp] = np.linspace(0, 1, ramp)
            env[d - ramp:] = np.linspace(1, 0, ramp)
            parts.append(x * env * rng.uniform(0.3, 1.0))
            if rng.random() < 0.5:
                parts.append(np.zeros(int(rng.uniform(0.02, 0.3) * RATE)))
            total += d
        write_wav(c.path("music-synth", f"{i:02}-{shape}"), np.concatenate(parts), -rng.uniform(1, 6))
    # Glides (sirens, slide whistles) through the DTMF bands, alone and in parallel fifths/octaves.
    for i in range(4):
        n = 30 * RATE
        t = np.arange(n) / RATE
        f = 600 * 2 ** (1.6 * (0.5 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(1.5, 8))))
        ph = 2 * np.pi * np.cumsum(f) / RATE
        x = np.sin(ph) + [0, 0.5, 0.7, 0.4][i] * np.sin([1, 2, 1.5, 3][i] * ph)
        write_wav(c.path("music-synth", f"glide-{i}"), x, -3)


# ------------------------------------------------------------------------------------- recorded and mixes

def gen_recorded(c):
    rng = random.Random("recorded")
    for d in RECORDED:
        for f in sorted(os.listdir(d)):
            if f.endswith(".ogg"):
                tag = os.path.basename(os.path.dirname(d)) if d.endswith("music") else os.path.basename(d)
                to_8k(os.path.join(d, f), c.path("music-recorded", f"{tag}-{f[:-4]}"), -rng.uniform(1, 4))


def gen_mixes(c):
    rng = random.Random("mixes")
    speech = sorted(os.path.join(r, f) for k in ["speech-espeak", "speech-mbrola", "speech-flite", "speech-pico"]
                    for r, _, fs in os.walk(os.path.join(c.root, k)) for f in fs if f.count(".") == 1)
    music = sorted(os.path.join(r, f) for k in ["music-recorded", "music-midi", "singing-formant"]
                   for r, _, fs in os.walk(os.path.join(c.root, k)) for f in fs if f.count(".") == 1)
    for i in range(24):
        s = read_wav(rng.choice(speech))
        m = read_wav(rng.choice(music))
        n = min(len(s), 45 * RATE)
        off = rng.randrange(max(1, len(m) - n))
        m = np.resize(m[off:off + n], n)
        rel = 10 ** (rng.uniform(-12, 6) / 20)  # music relative to speech
        x = s[:n] / (np.std(s[:n]) or 1) + rel * m / (np.std(m) or 1)
        write_wav(c.path("speech-over-music", f"{i:02}-{rel:.2f}"), x, -rng.uniform(1, 4))
    # Noise: white, pink, brown, babble, mains hum with harmonics, and call-progress tones.
    g = np.random.default_rng(20240611)
    n = 60 * RATE
    white = g.standard_normal(n)
    spec = np.fft.rfft(g.standard_normal(n))
    fr = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 10)
    pink = np.fft.irfft(spec / np.sqrt(fr), n)
    brown = np.fft.irfft(spec / fr, n)
    babble = sum(np.resize(read_wav(p), n) for p in rng.sample(speech, 8))
    t = np.arange(n) / RATE
    hum = sum((0.8 ** h) * np.sin(2 * np.pi * 50 * h * t + h) for h in range(1, 40)) + 0.1 * white
    hum60 = sum((0.85 ** h) * np.sin(2 * np.pi * 60 * h * t + h * h) for h in range(1, 40)) + 0.1 * white
    for name, x in [("white", white), ("pink", pink), ("brown", brown), ("babble", babble), ("hum-50", hum),
                    ("hum-60", hum60)]:
        write_wav(c.path("noise", name), x, -2)
    cadence = lambda on, off: (np.arange(n) % int((on + off) * RATE)) < on * RATE  # noqa: E731
    progress = [("dial-us", [350, 440], None), ("ringback-us", [440, 480], (2, 4)),
                ("busy-us", [480, 620], (0.5, 0.5)), ("reorder-us", [480, 620], (0.25, 0.25)),
                ("dial-eu", [425], None), ("ringback-uk", [400, 450], (0.4, 0.2)), ("sit", [950, 1400, 1800], (0.33, 0.1))]
    for name, fs, cad in progress:
        x = sum(np.sin(2 * np.pi * f * t) for f in fs) * (cadence(*cad) if cad else 1)
        write_wav(c.path("noise", f"tones-{name}"), x, -6)


# -------------------------------------------------------------------------------------------- G.711 & main

def g711_round_trips(root):
    for r, _, fs in os.walk(root):
        for f in sorted(fs):
            if f.endswith(".wav") and f.count(".") == 1:
                src = os.path.join(r, f)
                for enc in ["u-law", "a-law"]:
                    run(["sox", "-D", src, "-e", enc, src[:-4] + f".{enc.replace('-', '')}.wav"])


def stamp():
    h = hashlib.sha256()
    with open(__file__, "rb") as fh:
        h.update(fh.read())
    h.update(str(RECIPE).encode())
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n"] + PACKAGES, capture_output=True,
                         text=True).stdout
    h.update(out.encode())
    return h.hexdigest()


def duration_s(root):
    total = {}
    for r, _, fs in os.walk(root):
        for f in fs:
            if f.endswith(".wav"):
                # G.711 files last as long as the PCM file they were made from.
                with wave.open(os.path.join(r, f.split(".")[0] + ".wav")) as w:
                    kind = os.path.relpath(r, root)
                    enc = f.split(".")[-2] if f.count(".") == 2 else "pcm"
                    total[(kind, enc)] = total.get((kind, enc), 0) + w.getnframes() / w.getframerate()
    return total


# Excerpts of the corpus committed as tests/fixtures/talkoff: (file, start s, seconds).
SAMPLE = [
    ("singing-formant/29-choir.wav", 3.5, 6), ("singing-formant/29-choir.wav", 33.5, 6),
    ("singing-formant/23-choir.wav", 16, 6), ("singing-formant/21-tenor.wav", 38.5, 6),
    ("music-synth/glide-1.wav", 3, 10), ("music-synth/11-sawtooth.wav", 0, 11),
    ("music-midi/00-flute-FluidR-bpm160.wav", 4, 9), ("music-midi/scan-flute-FluidR.wav", 17, 8),
    ("music-recorded/core-nunc_dimittis.wav", 163, 6), ("music-recorded/core-nunc_dimittis.wav", 186, 6),
    ("speech-espeak/45-en-f5-s110-p91.wav", 6.5, 8.5), ("speech-festival/06-kal_diphone-x1_0.wav", 31, 6),
    ("speech-over-music/08-0_31.wav", 35, 6), ("speech-over-music/12-0_50.wav", 18, 6),
]


def make_sample(root, dest):
    os.makedirs(dest, exist_ok=True)
    for f in os.listdir(dest):
        os.remove(os.path.join(dest, f))
    for rel, start, secs in SAMPLE:
        x = read_wav(os.path.join(root, rel))[int(start * RATE):int((start + secs) * RATE)]
        name = rel.replace("/", "--")[:-4] + f"--{start:g}s.wav"
        write_wav(os.path.join(dest, name.replace("--", "-", 0)), x)
    print(f"wrote {len(SAMPLE)} excerpts to {dest}")


def main():
    if sys.argv[1] == "--sample":
        make_sample(sys.argv[2], sys.argv[3])
        return
    root = sys.argv[1]
    want = stamp()
    sf = os.path.join(root, ".stamp")
    if os.path.exists(sf) and open(sf).read().strip() == want:
        print(f"talk-off corpus in {root} is up to date")
        return
    only = os.environ.get("TALKOFF_ONLY")  # regenerate one step only (for working on the recipe)
    if not only:
        shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root, exist_ok=True)
    c = Corpus(root)
    try:
        words = texts()
        steps = [("espeak-ng", lambda: gen_espeak(c, words)), ("mbrola", lambda: gen_mbrola(c, words)),
                 ("flite", lambda: gen_flite(c, words)), ("festival", lambda: gen_festival(c, words)),
                 ("pico", lambda: gen_pico(c, words)), ("singing", lambda: gen_singing(c, words)),
                 ("MIDI music", lambda: gen_midi(c)), ("sine and square melodies", lambda: gen_synth(c)),
                 ("recorded music", lambda: gen_recorded(c)), ("mixes and noise", lambda: gen_mixes(c)),
                 ("G.711 round trips", lambda: g711_round_trips(root))]
        for name, f in steps:
            if only and name not in only.split(","):
                continue
            print(f"== {name}", flush=True)
            f()
    finally:
        c.close()
    total = duration_s(root)
    hours = sum(total.values()) / 3600
    with open(os.path.join(root, "MANIFEST"), "w") as fh:
        for (kind, enc), s in sorted(total.items()):
            fh.write(f"{kind}\t{enc}\t{s / 60:.1f} min\n")
        fh.write(f"total\t\t{hours:.2f} h\n")
    print(open(os.path.join(root, "MANIFEST")).read())
    if not os.environ.get("TALKOFF_ONLY"):
        with open(sf, "w") as fh:
            fh.write(want + "\n")


if __name__ == "__main__":
    main()
