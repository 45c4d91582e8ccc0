"""Incremental JSON: objects and arrays item by item in constant memory (a 20 GB BioASQ file streams), and an
undecodable array element costs only itself (:class:`MalformedElement`), the stream resynchronising after it."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any


class MalformedElement:
    """Stands for an array element that could not be decoded (the reader re-synchronised after it)."""

    def __init__(self, message: str):
        self.message = message


class JsonStream:
    """Incremental JSON reader over a text stream: objects and arrays item by item, values with ``raw_decode``.

    Only one array element (or object value) is in memory at a time, so a 20 GB ``{"articles": [...]}`` file
    streams in constant memory.
    """

    _WHITESPACE = re.compile(r"[ \t\n\r]*")

    def __init__(self, handle: io.TextIOBase, chunk_size: int = 1 << 20, max_value_chars: int = 1 << 28):
        self.handle, self.chunk_size, self.max_value_chars = handle, chunk_size, max_value_chars
        self.buf, self.pos, self.eof = "", 0, False
        self.truncated = False  # an array element was undecodable and no later element could be found
        self.decoder = json.JSONDecoder()

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.handle.read(self.chunk_size)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """Next non-whitespace character ('' at end of input), not consumed."""
        while True:
            self.pos = self._WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, chars: str) -> str:
        char = self.peek()
        if not char or char not in chars:
            found = repr(char) if char else "end of input"
            raise json.JSONDecodeError(f"expected one of {chars!r}, found {found}", self.buf, self.pos)
        self.pos += 1
        return char

    _SCALAR_END = re.compile(r"[,\]}\s]")

    def value(self) -> Any:
        """Decode the next JSON value, reading more input as needed."""
        if self.peek() not in '{["':  # a number or literal: make sure its end is in the buffer
            while not self._SCALAR_END.search(self.buf, self.pos) and self._fill():
                pass
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except RecursionError:  # e.g. "[[[[..." : malformed for us, never a crash
                raise json.JSONDecodeError("JSON nested too deeply", self.buf, self.pos) from None
            except json.JSONDecodeError:
                if len(self.buf) - self.pos > self.max_value_chars or not self._fill():
                    raise
                continue
            self.pos = end
            return value

    def object_keys(self) -> Iterator[str]:
        """Keys of the object starting here; the caller consumes each value before asking for the next key."""
        self.expect("{")
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise json.JSONDecodeError("object key must be a string", self.buf, self.pos)
            self.expect(":")
            yield key
            if self.expect(",}") == "}":
                return

    def array(self) -> Iterator[Any]:
        """Elements of the array starting here; an undecodable element yields :class:`MalformedElement` and the
        stream resumes at the next line that starts a new object (one element per line, as BioASQ writes)."""
        self.expect("[")
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            try:
                yield self.value()
                closing = self.expect(",]")
            except json.JSONDecodeError as err:
                yield MalformedElement(err.msg)
                if not self._resync():
                    self.truncated = True
                    return
                continue
            if closing == "]":
                return

    def _resync(self) -> bool:
        pattern = re.compile(r"\n[ \t\r]*,?[ \t\r]*(?=\{)")
        start = self.pos + 1
        while True:
            match = pattern.search(self.buf, start)
            if match:
                self.pos = match.end()
                return True
            start = max(self.pos, len(self.buf) - 64)
            keep = start - self.pos
            if not self._fill():
                return False
            start = keep
