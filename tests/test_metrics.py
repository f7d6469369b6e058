"""Clip -> video averaging and video-level metrics."""

import torch

from i3d_train.engine.metrics import video_level_scores, video_metrics


def test_video_scores_average_clips_and_count_each_video_once():
    # Video 0: clips (0.9, 0.1) and (0.3, 0.7) -> mean (0.6, 0.4): class 0. Video 2: one clip, class 1.
    idx = torch.tensor([0, 2, 0])
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    labels = torch.tensor([0, 0, 0])
    v, vl, seen = video_level_scores(idx, scores, labels)
    assert torch.allclose(v, torch.tensor([[0.6, 0.4], [0.2, 0.8]]))
    assert vl.tolist() == [0, 0]
    assert seen.tolist() == [True, False, True]
    m = video_metrics(v, vl, num_classes=2)
    assert m["video_acc_top1"] == 0.5 and m["num_videos"] == 2.0


def test_duplicated_clips_do_not_change_the_average():
    """DDP pads with repeated samples: a repeated clip of a one-clip video leaves its score unchanged."""
    idx = torch.tensor([0, 1, 1])
    scores = torch.tensor([[0.2, 0.8], [0.7, 0.3], [0.7, 0.3]])
    v, vl, _ = video_level_scores(idx, scores, torch.tensor([1, 0, 0]))
    assert torch.allclose(v, torch.tensor([[0.2, 0.8], [0.7, 0.3]]))
    assert video_metrics(v, vl, 2)["video_acc_top1"] == 1.0


def test_mean_class_accuracy_differs_from_overall_on_imbalanced_data():
    # 3 videos of class 0 all right, 1 video of class 1 wrong: top-1 0.75, mean class 0.5.
    v = torch.tensor([[0.9, 0.1]] * 4)
    m = video_metrics(v, torch.tensor([0, 0, 0, 1]), 2)
    assert m["video_acc_top1"] == 0.75
    assert m["video_mean_class_acc"] == 0.5
