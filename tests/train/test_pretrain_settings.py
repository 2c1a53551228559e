"""The main job's warm start (issue 15 item 4): what `ssl-fed pretrain-synthetic` composes."""

from ssl_fed.config import load_config
from ssl_fed.train.local import schedule_for


def test_the_main_jobs_warm_start_is_ten_epochs_of_batch_128_without_privacy() -> None:
    # Execute: what `make demo` pretrains with (no overrides)
    cfg = load_config(config_name="pretrain")

    # Assert: a quarter of the old 40 epochs x 8,000 images, in-batch negatives, no privacy
    assert (cfg.pretrain.family, cfg.pretrain.num_images, cfg.pretrain.epochs) == (
        "strokes",
        8000,
        10,
    )
    assert (cfg.train.batch_size, cfg.task.name, cfg.task.negatives) == (
        128,
        "contrastive",
        "batch",
    )
    assert cfg.privacy.enabled is False


def test_ten_epochs_of_batch_128_on_8000_images_are_630_steps() -> None:
    # Prepare: the composed warm-start config with its epochs as the local epochs
    cfg = load_config(["train.local_epochs=10"], config_name="pretrain")

    # Execute
    steps = schedule_for(cfg, cfg.pretrain.num_images).steps

    # Assert: ceil(8000 / 128) = 63 steps per epoch, x 10 (the old 40 x 512 made 640)
    assert steps == 630
