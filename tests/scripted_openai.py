"""A scripted server on 127.0.0.1 that speaks the OpenAI HTTP protocol, for testing the real clients.

Chat completions answer with the scripted messages in order, or with what a function of the request body
returns (a model that reacts to what it reads); embeddings answer with a vector per input (float lists or
base64, as the client asks). Every request body is kept for assertions.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


class ScriptedOpenAI(ThreadingHTTPServer):
    def __init__(self, chat_replies: list[dict] | Callable[[dict], dict] | None = None,
                 embedding_dim: int = 8) -> None:
        self.chat_replies = chat_replies if callable(chat_replies) else list(chat_replies or [])
        self.embedding_dim = embedding_dim
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body})
                reply = server.chat(body) if self.path.endswith("/chat/completions") else server.embeddings(body)
                payload = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> ScriptedOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def chat(self, body: dict) -> dict:
        message = self.chat_replies(body) if callable(self.chat_replies) else self.chat_replies.pop(0)
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 0,
                "model": body["model"], "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}

    def embeddings(self, body: dict) -> dict:
        """A deterministic vector per text: its letter counts, so equal texts get equal vectors."""
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for index, text in enumerate(texts):
            vector = np.zeros(self.embedding_dim, np.float32)
            for char in text.lower():
                vector[ord(char) % self.embedding_dim] += 1
            encoded = (base64.b64encode(vector.tobytes()).decode() if body.get("encoding_format") == "base64"
                       else vector.tolist())
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1}}
