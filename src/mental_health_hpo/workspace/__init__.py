"""The experiments tree, shared by every package that writes into it.

Where each file of a study lives (``layout``), how a file is written so that no reader ever sees
half of it (``atomic``), how bytes are hashed (``hashing``) and the study lock (``locks``). The
checkpoint core, tracking and the hpo runner all write into the same tree, so these belong to
none of them. Never imports kedro or mlflow.
"""
