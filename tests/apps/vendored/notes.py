"""An app whose requirements are not all on an index as wheels: `mailish` exists only as a
pure-Python sdist, and `oldtimer` is wanted only on Pythons up to 3.11.2 (a marker judged for the
hosts, not for the machine that deploys). The test writes requirements.txt with the folder
that offers both (`--find-links`)."""

import importlib.metadata
import sys

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    found = {}
    for name in ("mailish", "oldtimer"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return jsonify(python=".".join(map(str, sys.version_info[:3])), **found)
