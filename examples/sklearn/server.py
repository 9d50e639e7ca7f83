"""modelcycle example model server: serves /predict from the artifact modelcycle points it at,
and exports Prometheus metrics by version (requests, errors, latency, and a histogram of its
predictions for drift detection)."""

import json
import os
import pathlib
import pickle
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

PREDICTION_BUCKETS = [round(0.1 * i, 1) for i in range(1, 11)]

VERSION = os.environ.get("MODELCYCLE_VERSION", "unknown")
MODEL = os.environ.get("MODELCYCLE_MODEL", "model")
REQUESTS = Counter("modelcycle_model_requests", "Prediction requests", ["model", "version"])
ERRORS = Counter("modelcycle_model_request_errors", "Prediction requests that failed", ["model", "version"])
LATENCY = Histogram("modelcycle_model_request_duration_seconds", "Time to answer a prediction request", ["model", "version"])
PREDICTIONS = Histogram(
    "modelcycle_model_prediction", "Predicted probability of the positive class", ["model", "version"], buckets=PREDICTION_BUCKETS
)


def load(uri):
    path = pathlib.Path(uri[len("file://"):] if uri.startswith("file://") else uri)
    metadata = json.loads((path / "metadata.json").read_text())
    if metadata.get("broken"):
        sys.exit(f"server: the artifact at {uri} is marked broken; refusing to serve it")
    with open(path / "model.pkl", "rb") as f:
        return pickle.load(f)


class Handler(BaseHTTPRequestHandler):
    model = None

    def reply(self, code, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, {"status": "ok", "version": VERSION})
        elif self.path == "/metrics":
            self.reply(200, generate_latest(), CONTENT_TYPE_LATEST)
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        if self.path != "/predict":
            self.reply(404, {"error": "not found"})
            return
        labels = {"model": MODEL, "version": VERSION}
        REQUESTS.labels(**labels).inc()
        started = time.perf_counter()
        try:
            length = int(self.headers.get("Content-Length", "0"))
            instances = json.loads(self.rfile.read(length))["instances"]
            scores = [float(p) for p in self.model.predict_proba(instances)[:, 1]]
        except Exception as error:  # a bad request must not take the server down
            ERRORS.labels(**labels).inc()
            self.reply(400, {"error": str(error)})
            return
        finally:
            LATENCY.labels(**labels).observe(time.perf_counter() - started)
        for s in scores:
            PREDICTIONS.labels(**labels).observe(s)
        self.reply(200, {"predictions": scores, "version": VERSION})

    def log_message(self, *args):
        pass


def main():
    uri = os.environ.get("MODELCYCLE_MODEL_URI")
    if not uri:
        sys.exit("server: MODELCYCLE_MODEL_URI is not set; modelcycle injects it into the serving pods")
    Handler.model = load(uri)
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0" if os.environ.get("KUBERNETES_SERVICE_HOST") else "127.0.0.1", port), Handler)
    print(f"serving {MODEL} v{VERSION} from {uri} on port {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
