"""scripts/file_digest.py: the chunked md5 equals the digest of the whole file."""
import hashlib
import os

from scripts.file_digest import file_md5


def test_file_md5_reads_in_chunks_and_matches_the_whole_file_digest(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # three full 1 MiB chunks and a partial one
    path = tmp_path / "w.pt"
    path.write_bytes(data)
    assert file_md5(str(path)) == hashlib.md5(data).hexdigest()
    assert file_md5(path) != hashlib.md5(data[:-1]).hexdigest()
