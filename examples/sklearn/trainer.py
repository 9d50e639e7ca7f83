"""modelcycle example trainer: trains a classifier on scikit-learn's bundled breast-cancer data.

It reads what modelcycle injects (MODELCYCLE_*), saves the model under the artifact URI (a
local path or file:// URI, e.g. a PVC mount), and writes its metrics and a reference histogram
of its predictions to the termination message, where the controller reads them.
"""

import hashlib
import json
import os
import pathlib
import pickle
import sys
import zlib

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096
# Bucket upper bounds of the prediction histogram; the model server exports the same ones.
PREDICTION_BUCKETS = [round(0.1 * i, 1) for i in range(1, 11)]


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"trainer: {name} is not set; modelcycle injects it into the training Job")
    return value


def artifact_dir(uri):
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if "://" in uri:
        sys.exit(f"trainer: this example writes to a local path or file:// URI, not {uri}")
    return pathlib.Path(uri)


def histogram(values, bounds):
    counts = [0] * len(bounds)
    for v in values:
        for i, upper in enumerate(bounds):
            if v <= upper:
                counts[i] += 1
                break
    return {"bounds": bounds, "counts": counts}


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def main():
    version = env("MODELCYCLE_VERSION")
    dataset_version = env("MODELCYCLE_DATASET_VERSION")
    out = artifact_dir(env("MODELCYCLE_ARTIFACT_URI"))
    n_estimators = int(env("MODELCYCLE_PARAM_N_ESTIMATORS", "100"))
    max_depth = int(env("MODELCYCLE_PARAM_MAX_DEPTH", "6"))
    message_path = env("MODELCYCLE_TERMINATION_MESSAGE_PATH", "/dev/termination-log")

    # The dataset version picks the split, standing in for "new data arrived".
    seed = zlib.crc32(dataset_version.encode()) % (2**31)
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    model = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed)
    model.fit(x_train, y_train)
    scores = model.predict_proba(x_test)[:, 1]

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "model.pkl", "wb") as f:
        pickle.dump(model, f)
    # MODELCYCLE_PARAM_BROKEN=true marks the artifact so the example server refuses to start: a
    # version that passes its gates but never becomes healthy, to see a rollback for real.
    broken = env("MODELCYCLE_PARAM_BROKEN", "false").lower() == "true"
    (out / "metadata.json").write_text(json.dumps({"version": version, "datasetVersion": dataset_version, "broken": broken}))

    report = {
        "metrics": {
            "auc": round(float(roc_auc_score(y_test, scores)), 6),
            "accuracy": round(float(accuracy_score(y_test, scores >= 0.5)), 6),
            "log_loss": round(float(log_loss(y_test, scores)), 6),
        },
        "reference": {"predictions": histogram(scores, PREDICTION_BUCKETS)},
        # What it actually read: the controller flags a dataset version whose content changed.
        "dataset": {"digest": digest(x_train, y_train), "rows": int(len(x_train))},
    }
    message = json.dumps(report, separators=(",", ":"))
    if len(message.encode()) > TERMINATION_MESSAGE_LIMIT:
        sys.exit(f"trainer: the report is {len(message)} bytes, more than a termination message holds")
    with open(message_path, "w") as f:
        f.write(message)
    print(f"trained v{version} on {dataset_version}: {report['metrics']}", flush=True)


if __name__ == "__main__":
    main()
