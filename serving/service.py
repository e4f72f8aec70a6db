"""The BentoML service: LLM2VEC4CXR and LLM2CLIP4CXR embeddings, report retrieval and zero-shot
classification. Thin over the library: every computation is a components/ call.

    bentoml serve serving.service:CXRService     (or `make serve`; models come from the model store,
                                                   written by `cxr package`)
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Optional

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException, InvalidArgument
from pydantic import Field, ValidationError
from starlette.responses import JSONResponse

from serving.config import CLIP_MODEL, INDEX_MODEL, MODEL_VERSION, SERVICE_NAME, TEXT_MODEL
from serving.inputs import SERVE, TEXT_CHECKS, Texts, Upload, Uploads, as_query, configure_decoding

log = logging.getLogger("cxr.serving")


class RejectedRequestLog(logging.Filter):
    """BentoML logs every failed request with its traceback, 4xx included, and a pydantic error's text
    quotes the input: a report, so PHI in the server log. A rejected request becomes one warning that
    names route, status and what was wrong, never the input; a 5xx keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            status, why = 400, f"{error.error_count()} validation error(s): " + "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'} ({e['type']})"
                for e in error.errors(include_input=False, include_context=False, include_url=False))
        elif isinstance(error, BentoMLException) and error.error_code.value < 500:
            status, why = error.error_code.value, f"{type(error).__name__}: {error}"
        else:
            return True
        path, method = record.args if isinstance(record.args, tuple) and len(record.args) == 2 else ("?", "?")
        record.msg, record.args = "%s %s rejected with %d: %s", (method, path, status, why)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


# BentoML's failed-request log (bentoml._internal.server.http_app.log_exception).
logging.getLogger("bentoml._internal.server.http_app").addFilter(RejectedRequestLog())


class ModelCardRoute:
    """GET /model_card. BentoML APIs are POST endpoints, and a mounted app would answer only
    /model_card/ (a redirect otherwise), so this small ASGI middleware answers the exact path."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") == "/model_card" and scope["method"] in ("GET", "HEAD"):
            return await JSONResponse(bentoml.get_current_service().model_card())(scope, receive, send)
        await self.app(scope, receive, send)


@bentoml.service(name=SERVICE_NAME, workers=SERVE.workers, traffic={"timeout": SERVE.timeout_s})
class CXRService:
    # Declared at class scope: `bentoml build` packs exactly these into the Bento.
    text_model = bentoml.models.BentoModel(f"{TEXT_MODEL}:{MODEL_VERSION}")
    clip_model = bentoml.models.BentoModel(f"{CLIP_MODEL}:{MODEL_VERSION}")
    index_model = bentoml.models.BentoModel(f"{INDEX_MODEL}:{MODEL_VERSION}")

    def __init__(self) -> None:
        """Load once per worker: CUDA when present, else CPU."""
        import torch

        from components.clip.model import CXRClip
        from components.encoder.text_encoder import TextEncoder
        from components.packaging.index import ReportIndex

        missing = [str(ref) for ref in (CXRService.inner.text_model, CXRService.inner.clip_model,
                                        CXRService.inner.index_model) if ref.stored is None]
        if missing:  # say so plainly rather than let BentoML look for them in BentoCloud
            raise RuntimeError(f"{', '.join(missing)} not in the BentoML model store "
                               f"({os.environ.get('BENTOML_HOME', '~/bentoml')}): run `cxr package` (or `make demo`)")
        versions = {m.tag.version for m in (self.text_model, self.clip_model, self.index_model)}
        if len(versions) != 1:
            raise RuntimeError(f"models from different packages {sorted(versions)}: re-run `cxr package`")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.text = TextEncoder.load(self.text_model.path, device=self.device)
        self.clip = CXRClip.load(self.clip_model.path, device=self.device)
        configure_decoding(self.clip.config.decode_resolution, self.clip.config.decode_percentiles)
        TEXT_CHECKS[:] = [self._check_query]
        self.index = ReportIndex(Path(self.index_model.path) / "index")
        self.card = json.loads((Path(self.index_model.path) / "model_card.json").read_text())
        packaged_hash = self.card.get("models", {}).get("text_encoder", {}).get("content_hash")
        if self.clip.text_encoder is not None and packaged_hash and self.clip.config.encoder_hash == packaged_hash:
            self.clip.text_encoder = self.text  # the same weights (content hashes agree): hold them once
        log.info("loaded package %s on %s (%d reference reports)", versions.pop(), self.device, len(self.index))

    def _check_query(self, q) -> None:
        """Raise ValueError (-> 400) for a query the encoders cannot take, before it joins a batch."""
        if q.encoder == "llm2vec4cxr":
            self.text.tokenize(["x"], instruction=q.instruction)
        else:
            instruction = self.clip.instruction(q.section)
            if self.clip.text_encoder is not None:
                self.clip.text_encoder.tokenize(["x"], instruction=instruction)

    def __is_ready__(self) -> bool:  # /readyz: the models are loaded (__init__ finished)
        return hasattr(self, "index")

    def model_card(self) -> dict:
        return {**self.card, "service": {"name": SERVICE_NAME, "device": self.device,
                                         "bentoml": bentoml.__version__,
                                         "models": [str(m.tag) for m in (self.text_model, self.clip_model,
                                                                         self.index_model)]}}

    # ---- embeddings ---------------------------------------------------------------------------------

    @bentoml.api(batchable=True, max_batch_size=SERVE.max_batch_size, max_latency_ms=SERVE.max_latency_ms)
    def embed_text(self, texts: Texts) -> list[list[float]]:
        """Unit vectors, one per text. A text is a string (LLM2VEC4CXR with its trained instruction)
        or {"text", "encoder": "llm2vec4cxr"|"clip", "instruction", "section"}."""
        queries = [as_query(t) for t in texts]
        groups = defaultdict(list)  # one model call per (encoder, option) within the adaptive batch
        for i, q in enumerate(queries):
            groups[(q.encoder, q.instruction if q.encoder == "llm2vec4cxr" else q.section)].append(i)
        out: list = [None] * len(queries)
        for (encoder, option), rows in groups.items():
            batch = [queries[i].text for i in rows]
            if encoder == "llm2vec4cxr":
                vecs = self.text.encode(batch, instruction=option, batch_size=SERVE.text_batch_size)
            else:
                vecs = self.clip.encode_text(batch, section=option, batch_size=SERVE.text_batch_size)
            for i, v in zip(rows, vecs):
                out[i] = v.tolist()
        return out

    @bentoml.api(batchable=True, max_batch_size=SERVE.max_batch_size, max_latency_ms=SERVE.max_latency_ms)
    def embed_image(self, images: Uploads) -> np.ndarray:
        """Unit vectors of the CLIP image tower, one per DICOM / PNG / JPEG upload."""
        return self.clip.encode_image(list(images), batch_size=SERVE.image_batch_size)

    # ---- retrieval and zero-shot classification -------------------------------------------------------

    @bentoml.api
    def retrieve(self, text: Annotated[Optional[str], Field(min_length=1, max_length=SERVE.max_text_chars)] = None,
                 image: Upload = None,  # optional; not Optional[...]: BentoML cannot hash a Path in a Union
                 k: Annotated[int, Field(ge=1, le=SERVE.max_k)] = 5) -> dict:
        """The k reference reports closest to a text (LLM2VEC4CXR space) or an image (CLIP space)."""
        if (text is None) == (image is None):
            raise InvalidArgument("give exactly one of text or image")
        if text is not None:
            query, space = self.text.encode([text])[0], "text"
        else:
            query, space = self.clip.encode_image([image])[0], "clip"
        return {"query": "text" if text is not None else "image", "results": self.index.search(query, space, k)}

    @bentoml.api
    def classify(self, image: Upload,
                 observations: Optional[Annotated[list[str], Field(min_length=1, max_length=64)]] = None) -> dict:
        """Zero-shot probability of each observation (default: the 14 CheXpert observations)."""
        from components.evaluation.zero_shot import OBSERVATIONS, zero_shot_probabilities

        unknown = sorted(set(observations or ()) - set(OBSERVATIONS))
        if unknown:
            raise InvalidArgument(f"unknown observations {unknown}; known: {list(OBSERVATIONS)}")
        vecs = self.clip.encode_image([image])
        probs = zero_shot_probabilities(self.clip, vecs, list(observations) if observations else None)
        return {"probabilities": {name: float(p[0]) for name, p in probs.items()}}


CXRService.add_asgi_middleware(ModelCardRoute)
