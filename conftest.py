"""pytest configuration shared by the unit tests and nbval's notebook runs."""


def pytest_collection_modifyitems(items):
    """Give nbval more than its hard-coded 5 s to receive a cell's output after the cell finished.

    Under ``-n 2`` two kernels share two cores, and a training cell's progress-bar messages can
    arrive later than 5 s after the cell's reply; nbval then reports "Timeout of 5 seconds exceeded
    waiting for output" although the cell succeeded. A real hang is still caught by the cell timeout.
    """
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's NbCellItem
            item.output_timeout = 120
