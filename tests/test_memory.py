"""The memory probes (lm_unlearn.memory)."""


def test_peak_rss_window_resets_and_grows():
    import mmap

    import pytest

    from lm_unlearn.memory import peak_rss_bytes, reset_peak_rss

    if not reset_peak_rss():
        pytest.skip("no /proc/self/clear_refs here")
    base = peak_rss_bytes()
    size = 64 * 2**20
    block = mmap.mmap(-1, size)  # fresh anonymous pages: the allocator cannot reuse freed memory
    block.write(b"\1" * size)
    grown = peak_rss_bytes()
    block.close()
    assert grown >= base + 60 * 2**20
    reset_peak_rss()
    assert peak_rss_bytes() < grown  # the unmapped block is no longer part of the new window
