"""Fixture writers for the official CIFAR pickle layouts, and checks shared by the data tests."""

import pickle
from pathlib import Path

import numpy as np

FINE = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab
    crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard
    lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom
    oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
    possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake
    spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor
    train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
COARSE = ("aquatic_mammals fish flowers food_containers fruit_and_vegetables "
          "household_electrical_devices household_furniture insects large_carnivores "
          "large_man-made_outdoor_things large_natural_outdoor_scenes "
          "large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people reptiles "
          "small_mammals trees vehicles_1 vehicles_2").split()
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]
BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


def write_cifar100(root: Path, n_train: int = 3, n_test: int = 2) -> dict:
    """root/cifar-100-python/{train,test,meta}, data uint8 N x 3072 in R, G, B plane order."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.tile(np.arange(100), n)  # interleaved, as in the real files
        hwc = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
        data = hwc.transpose(0, 3, 1, 2).reshape(len(labels), 3072)
        entry = {"filenames": [f"img_{i}.png" for i in range(len(labels))],
                 "batch_label": f"{split} batch 1 of 1",
                 "fine_labels": labels.tolist(),
                 "coarse_labels": (labels % 20).tolist(),
                 "data": data}
        with open(folder / split, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        out[split] = (hwc, labels)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": FINE, "coarse_label_names": COARSE}, f, protocol=2)
    return out


def write_cifar10(root: Path, per_batch: int = 1, n_test: int = 2) -> dict:
    """root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}, as in the official
    archive: data uint8 N x 3072 in R, G, B plane order, `labels` a list of ints."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    hwcs, labels_all = {"train": [], "test": []}, {"train": [], "test": []}
    for k, (name, n) in enumerate([(b, per_batch) for b in BATCHES] + [("test_batch", n_test)]):
        labels = np.tile(np.arange(10), n)
        rng.shuffle(labels)  # the real batches are not sorted by class
        hwc = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
        entry = {"batch_label": f"batch {k + 1}", "labels": labels.tolist(),
                 "data": hwc.transpose(0, 3, 1, 2).reshape(len(labels), 3072),
                 "filenames": [f"img_{k}_{i}.png" for i in range(len(labels))]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        split = "test" if name == "test_batch" else "train"
        hwcs[split].append(hwc)
        labels_all[split].append(labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"num_cases_per_batch": 10 * per_batch, "label_names": CIFAR10_NAMES,
                     "num_vis": 3072}, f, protocol=2)
    return {s: (np.concatenate(hwcs[s]), np.concatenate(labels_all[s])) for s in hwcs}


def check_plane_order(pickle_path: Path, load_first_image) -> None:
    """The 3072 bytes of a row are the R, G and B planes, each 32 x 32 row-major."""
    entry = pickle.loads(pickle_path.read_bytes())
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)])
    row[1] = 99  # R plane, row 0, column 1
    row[1024 + 32] = 77  # G plane, row 1, column 0
    entry["data"][0] = row
    pickle_path.write_bytes(pickle.dumps(entry, protocol=2))
    img = np.asarray(load_first_image())
    assert img[0, 0].tolist() == [10, 20, 30]
    assert img[0, 1].tolist() == [99, 20, 30]
    assert img[1, 0].tolist() == [10, 77, 30]
