"""Drives Cabin's Wyoming services with the `wyoming` package Home Assistant uses.

    python client.py --asr URI --tts URI --wake URI --command WAV --no-wake WAV

Each check prints a line; any failure raises (non-zero exit). Run by tests/it/wyoming.rs.
"""

import argparse
import asyncio
import wave

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize
from wyoming.wake import Detect, Detection, NotDetected

LIMIT = 60


def pcm(path):
    with wave.open(path, "rb") as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (16000, 2, 1), path
        return w.readframes(w.getnframes())


async def events_until(client, done):
    """Events from `client` until one for which `done` is true (that one included)."""
    got = []
    while True:
        event = await asyncio.wait_for(client.read_event(), LIMIT)
        assert event is not None, f"connection closed after {[e.type for e in got]}"
        got.append(event)
        if done(event):
            return got


async def describe(uri):
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Describe().event())
        (event,) = await events_until(client, lambda e: Info.is_type(e.type))
        return Info.from_event(event)


async def send_audio(client, audio, chunk=3200):
    await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
    for i in range(0, len(audio), chunk):
        await client.write_event(
            AudioChunk(rate=16000, width=2, channels=1, audio=audio[i : i + chunk]).event()
        )
    await client.write_event(AudioStop().event())


async def asr(uri, command):
    info = await describe(uri)
    assert info.asr and info.asr[0].models, info
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Transcribe(language="en").event())
        await send_audio(client, pcm(command))
        events = await events_until(client, lambda e: Transcript.is_type(e.type) or Error.is_type(e.type))
    last = events[-1]
    assert Transcript.is_type(last.type), last
    text = Transcript.from_event(last).text
    assert "temperature" in text.lower(), text
    print(f"asr: {text!r}")


async def tts(uri):
    info = await describe(uri)
    (program,) = info.tts
    assert program.voices, program
    text = "Heating the driver seat. It will be warm in about a minute, and I will keep it there."
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Synthesize(text=text).event())
        events = await events_until(client, lambda e: AudioStop.is_type(e.type) or Error.is_type(e.type))
    kinds = [e.type for e in events]
    assert kinds[0] == "audio-start" and kinds[-1] == "audio-stop", kinds
    start = AudioStart.from_event(events[0])
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    assert len(chunks) >= 2, kinds
    seconds = sum(len(c.audio) for c in chunks) / (start.rate * start.width * start.channels)
    assert 2.0 < seconds < 15.0, seconds
    # An empty request is answered with an empty stream, a missing text with an error.
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Synthesize(text="").event())
        empty = await events_until(client, lambda e: AudioStop.is_type(e.type))
    assert [e.type for e in empty] == ["audio-start", "audio-stop"], empty
    print(f"tts: {program.voices[0].name}, {seconds:.2f} s in {len(chunks)} chunks at {start.rate} Hz")


async def wake(uri, command, no_wake):
    info = await describe(uri)
    (program,) = info.wake
    (model,) = program.models
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Detect(names=[model.name]).event())
        await send_audio(client, pcm(command))
        got = await events_until(client, lambda e: Detection.is_type(e.type) or NotDetected.is_type(e.type) or Error.is_type(e.type))
        detection = got[-1]
        assert Detection.is_type(detection.type), [e.type for e in got]
        detection = Detection.from_event(detection)
        assert detection.name == model.name, detection
        # The same connection, another stream: speech without the wake word.
        await client.write_event(Detect(names=[model.name]).event())
        await send_audio(client, pcm(no_wake))
        got = await events_until(client, lambda e: Detection.is_type(e.type) or NotDetected.is_type(e.type))
        assert NotDetected.is_type(got[-1].type), [e.type for e in got]
        # A model this service does not have.
        await client.write_event(Detect(names=["okay_nabu"]).event())
        (refused,) = await events_until(client, lambda e: True)
        assert Error.is_type(refused.type), refused
    print(f"wake: {model.name!r} ({model.phrase}) at {detection.timestamp} ms; none in speech without it")


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--asr")
    p.add_argument("--tts")
    p.add_argument("--wake")
    p.add_argument("--command", help="16 kHz WAV: the wake word, then a temperature command")
    p.add_argument("--no-wake", help="16 kHz WAV: speech without the wake word")
    a = p.parse_args()
    if a.asr:
        await asr(a.asr, a.command)
    if a.tts:
        await tts(a.tts)
    if a.wake:
        await wake(a.wake, a.command, a.no_wake)


asyncio.run(main())
