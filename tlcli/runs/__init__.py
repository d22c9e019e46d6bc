"""The run-folder contract: the Run, its events, model/ artifacts and paths."""
