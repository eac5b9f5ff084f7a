"""Entry module of the packaged LoRA Deck app (briefcase runs `python -m loradeck`).

It exists only in the installers and `briefcase dev`; a pip install starts through the `loradeck`
console script (desktop_app.launcher:main) instead. Both end in the same code.
"""
