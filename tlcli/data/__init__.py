"""Input shared by the commands: images, labelled image sets, texts.

- ``images``: decode one file to RGB (``load_image``) or many in parallel, in order (``load_images``).
- ``sources``: turn command-line arguments, folders, stdin lists, class folders and CSV manifests into paths
  and labelled samples; collect and count the files that had to be skipped (``BadFiles``).
- ``texts``: texts and labelled texts from arguments, stdin, CSV/TSV/JSONL or plain-text files.

``sources`` imports no PIL or numpy, so a command can expand its paths before paying for them.
"""
