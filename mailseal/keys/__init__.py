"""Key files on disk: the genkey layout, safe writes with backups, and key rotation.

``files`` is a shell (it writes files); ``rotation`` is core: the rotation
state and the table edits as values, with the time passed in.
"""
