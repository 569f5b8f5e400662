"""Which trial failures are the same one: the exception's type at one line of the user's code,
whatever sampled values its message holds."""

from tuning.records.folder import SweepFolder
from tuning.records.ledger import TrialRecord
from tuning.records.status import Status
from tuning.sweep.callbacks import failure_key, sweep_failure


def trace(user_file, line, message):
    error = f"tuning.sweep.trainable.TrainableError: sweep.yaml: trainable 'mypkg.train:fit' raised {message}"
    text = (
        "Traceback (most recent call last):\n"
        f'  File "{user_file}", line {line}, in fit\n'
        "    out = model(x)\n"
        f"RuntimeError: {message.split(': ', 1)[1]}\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        f"{error}\n"
    )
    return error, text


def test_the_same_bug_with_other_sampled_values_is_one_failure(tmp_path):
    user = tmp_path / "mypkg" / "train.py"
    a = trace(user, 12, "RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x29 and 30x128)")
    b = trace(user, 12, "RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x29 and 30x64)")
    other_line = trace(user, 13, "RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x29 and 30x64)")
    other_type = trace(user, 12, "ValueError: mat1 and mat2 shapes cannot be multiplied (32x29 and 30x64)")
    assert failure_key(*a) == failure_key(*b) == f"RuntimeError at {user}:12"
    assert len({failure_key(*a), failure_key(*other_line), failure_key(*other_type)}) == 3
    assert failure_key("DatasetUnavailable: no CIFAR-10", "no user frame") == "DatasetUnavailable: no CIFAR-10"

    folder = SweepFolder(tmp_path / "sweep", str(tmp_path / "sweep"))
    records = []
    for i, (error, text) in enumerate([a, b]):
        folder.error_file(f"t{i}").parent.mkdir(parents=True, exist_ok=True)
        folder.error_file(f"t{i}").write_text(text)
        records.append(TrialRecord(f"t{i}", {}, Status.FAILED, error=error))
    assert sweep_failure(records, folder) == a[0]
    folder.error_file("t1").write_text(other_line[1])
    assert sweep_failure(records, folder) is None
