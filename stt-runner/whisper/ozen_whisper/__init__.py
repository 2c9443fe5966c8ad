"""ozen's faster-whisper worker: Silero VAD at 8 kHz, LocalAgreement-2, a framed stdio server."""

__version__ = "0.1.0"
