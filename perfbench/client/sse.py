"""An incremental ``text/event-stream`` decoder: bytes in, events out, no I/O, no clocks.

It follows the WHATWG event-stream rules for the parts LLM servers use: ``data:`` lines
(several are joined with ``\\n``), ``event:`` names, ``:`` comments and keep-alives (ignored),
``id:``/``retry:`` (ignored), and any of ``\\r\\n``, ``\\n``, ``\\r`` as the line end, including a
``\\r\\n`` split across two reads. Bytes can arrive cut anywhere; an event is returned only once
its blank line has arrived. ``flush()`` at the end of the body returns an event whose blank line
never came (lenient: some servers end ``data: [DONE]`` with a single newline).

The client's hot path does not come here for the common shape, whole one-line ``data:`` events
(``as_json_array`` below turns a read of them into one JSON array); this decoder takes every
other shape, exactly.
"""

from __future__ import annotations

Event = tuple[str, bytes]
"""(event name, data); the name is ``""`` for the default ``message`` event."""


class SSEDecoder:
    __slots__ = ("_tail", "_data", "_event", "_skip_lf")

    def __init__(self) -> None:
        self._tail = b""  # an incomplete line carried to the next read
        self._data: list[bytes] = []  # data lines of the event being built
        self._event = ""
        self._skip_lf = False  # the last read ended in \r: a leading \n belongs to it

    @property
    def idle(self) -> bool:
        """True between events: nothing carried over from earlier reads."""
        return not (self._tail or self._data or self._event or self._skip_lf)

    def decode(self, chunk: bytes) -> list[Event]:
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._tail + chunk if self._tail else chunk
        lines = buf.split(b"\n")
        self._tail = lines.pop()  # after the last \n: incomplete (or b"")
        events: list[Event] = []
        self._lines(lines, events)
        return events

    def _lines(self, lines: list[bytes], events: list[Event]) -> None:
        for line in lines:
            if not line:
                self._dispatch(events)
            elif line[0] == 0x3A:  # ":" comment / keep-alive
                continue
            else:
                name, sep, value = line.partition(b":")
                if sep and value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    self._data.append(value)
                elif name == b"event":
                    self._event = value.decode("utf-8", "replace")

    def _dispatch(self, events: list[Event]) -> None:
        if self._data:
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
            events.append((self._event if self._event != "message" else "", data))
        self._data = []
        self._event = ""

    def flush(self) -> list[Event]:
        """End of body: return the event still being built, if it has data."""
        events: list[Event] = []
        if self._tail:
            self._lines([self._tail], events)
            self._tail = b""
        self._skip_lf = False
        self._dispatch(events)
        return events


_DONE = b"data: [DONE]\n\n"


def as_json_array(block: bytes) -> tuple[bytes, bool] | None:
    """A read made only of whole one-line ``data:`` events, as one JSON array; else None.

    The hot path of the client: vLLM-style streams are exactly this shape, and a whole read
    becomes ``[e1,e2,...]`` with one ``replace``, so that one typed decode takes every event of
    the read. A one-line data payload holds no raw newline (JSON escapes them), so after the
    ``\n\ndata: `` separators are replaced, any newline left means the read had another shape
    (comments, ``event:`` lines, multi-line data, a split event): None, and the caller uses
    the decoder. Content that still is not a JSON array of objects fails the typed decode, and
    the caller falls back to the decoder as well. Returns (the array, or b"" when the read held
    only ``[DONE]``; whether the read ended with ``[DONE]``). Valid only when the decoder is idle.
    """
    if not (block.startswith(b"data: ") and block.endswith(b"\n\n")):
        return None
    done = block.endswith(_DONE)
    if done:
        block = block[: -len(_DONE)]
        if not block:
            return b"", True
        if not block.endswith(b"\n\n"):  # [DONE] was not an event of its own
            return None
    payload = block[6:-2].replace(b"\n\ndata: ", b",")
    if b"\n" in payload or b"\r" in payload:
        return None
    return b"[" + payload + b"]", done
