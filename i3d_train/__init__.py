"""i3d-train: config-driven training of the architectures of "Quo Vadis, Action Recognition?"."""

from i3d_train.resolvers import register_resolvers

register_resolvers()
