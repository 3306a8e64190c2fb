"""The threshold explorer: move the two thresholds (or a target FPR) and see what changes.

:class:`ThresholdExplorer` holds each patch's two residual maxima for the validation and test
sets, and a few example patches with their residuals. :meth:`ThresholdExplorer.update` computes
everything for one setting (TPR of every test set, the FPR on the validation and test okay
patches) and draws the figure; :meth:`ThresholdExplorer.widget` wires it to ipywidgets
controls. The update is a plain function of its arguments, so it is tested without a browser.
"""

from __future__ import annotations

import numpy as np

from . import metrics
from .figures import MAX_WIDTH_IN
from .residuals import kernel_statistics
from .thresholds import DEFAULT_FPR, ResidualThresholds


class ThresholdExplorer:
    """Interactive thresholds for the autoencoder's two residual statistics.

    Parameters
    ----------
    maxima : dict
        name -> ``(max_mean, max_std)``, arrays (n,), for ``"val_okay"``, ``"okay"`` (test)
        and every test set (from :func:`weldlab.evaluate.evaluate_autoencoder`).
    examples : dict, optional
        name -> ``(patches, residuals)``: arrays (k, 192, 192) and (k, 156, 156) shown with
        their flagged windows.
    """

    def __init__(self, maxima, examples=None):
        for name in ("val_okay", "okay"):
            if name not in maxima:
                raise ValueError(f"maxima: expected a {name!r} entry, got {sorted(maxima)}")
        self.maxima = {k: (np.asarray(a, float), np.asarray(b, float)) for k, (a, b) in maxima.items()}
        self.examples = examples or {}
        self.test_sets = [k for k in self.maxima if k not in ("val_okay", "okay")]
        if not self.test_sets:
            raise ValueError("maxima: no test set besides the okay patches")

    def thresholds_for_fpr(self, fpr):
        """Thresholds calibrated on the validation okay patches for ``fpr`` (OR rule)."""
        return ResidualThresholds.calibrate(*self.maxima["val_okay"], fpr=fpr)

    def state(self, t_mean, t_std):
        """Rates at one pair of thresholds.

        Returns
        -------
        dict
            ``t_mean``, ``t_std``, ``fpr_val``, ``fpr_test`` (fractions of validation and
            test okay patches flagged) and ``tpr``: test set -> fraction flagged.
        """
        th = ResidualThresholds(t_mean, t_std)

        def rate(name):
            a, b = self.maxima[name]
            return float(np.mean(th.score(a, b) > th.cut)) if a.size else float("nan")

        return {"t_mean": float(t_mean), "t_std": float(t_std), "fpr_val": rate("val_okay"),
                "fpr_test": rate("okay"), "tpr": {k: rate(k) for k in self.test_sets}}

    @staticmethod
    def state_table(state):
        """Markdown: a :meth:`state`'s thresholds and the share of every set flagged (%).

        Examples
        --------
        >>> from weldlab.explorer import ThresholdExplorer
        >>> state = {"t_mean": 0.05, "t_std": 0.02, "fpr_val": 0.001, "fpr_test": 0.0, "tpr": {"high": 0.9}}
        >>> print(ThresholdExplorer.state_table(state).splitlines()[-1])
        | high | 90 |
        """
        from .figures import markdown_table

        rows = [["okay, validation (false positives)", f"{100 * state['fpr_val']:.2f}"],
                ["okay, test (false positives)", f"{100 * state['fpr_test']:.2f}"]]
        rows += [[k.replace("_", " "), f"{100 * v:.0f}"] for k, v in state["tpr"].items()]
        return (f"$t_\\text{{mean}}$ = {state['t_mean']:.4f}, $t_\\text{{std}}$ = {state['t_std']:.4f}\n\n"
                + markdown_table(["test set", "flagged (%)"], rows))

    def update(self, test_set, t_mean=None, t_std=None, target_fpr=None, draw=True):
        """Everything shown for one setting.

        Parameters
        ----------
        test_set : str
            The set whose ROC curve, scatter and examples are drawn.
        t_mean, t_std : float, optional
            The thresholds; ignored when ``target_fpr`` is given.
        target_fpr : float, optional
            Calibrate both thresholds on the validation okay patches for this FPR.
        draw : bool
            Also draw the figure.

        Returns
        -------
        state : dict
            From :meth:`state`.
        fig : matplotlib.figure.Figure or None
        """
        if test_set not in self.test_sets:
            raise ValueError(f"test_set: expected one of {self.test_sets}, got {test_set!r}")
        if target_fpr is not None:
            th = self.thresholds_for_fpr(target_fpr)
            t_mean, t_std = th["t_mean"], th["t_std"]
        if t_mean is None or t_std is None:
            raise ValueError("give t_mean and t_std, or target_fpr")
        state = self.state(t_mean, t_std)
        return state, (self._draw(test_set, state) if draw else None)

    def _draw(self, test_set, state):
        import matplotlib.pyplot as plt

        from .figures import COLOURS, flag_colormap, log_axis

        th = ResidualThresholds(state["t_mean"], state["t_std"])
        n_ex = min(3, len(self.examples.get(test_set, ([],))[0]))
        fig = plt.figure(figsize=(MAX_WIDTH_IN, 6.2 if n_ex else 3.4))
        grid = fig.add_gridspec(2 if n_ex else 1, 3 if not n_ex else max(3, 2 * n_ex), height_ratios=[1.15, 1] if n_ex else None)
        cols = grid.ncols // 3
        ax_roc = fig.add_subplot(grid[0, :cols])
        ax_bar = fig.add_subplot(grid[0, cols:2 * cols])
        ax_sc = fig.add_subplot(grid[0, 2 * cols:])
        # ROC of the combined score with the thresholds' ratio fixed; the point is this setting.
        okay, pos = (th.score(*self.maxima[k]) for k in ("okay", test_set))
        fpr, tpr, _ = metrics.roc_curve(okay, pos)
        floor = 0.5 / max(okay.size, 1)
        ax_roc.step(np.maximum(fpr, floor), tpr, where="post", color=COLOURS["neutral"])
        ax_roc.plot(max(state["fpr_test"], floor), state["tpr"][test_set], "o", color=COLOURS["defect"])
        log_axis(ax_roc)
        ax_roc.set_xlabel("FPR on test okay patches")
        ax_roc.set_ylabel(f"TPR on {test_set}")
        ax_roc.set_title(f"ROC: FPR {100 * state['fpr_test']:.2f} %,\nTPR {100 * state['tpr'][test_set]:.0f} %")
        names = self.test_sets
        ax_bar.bar(range(len(names)), [100 * state["tpr"][n] for n in names],
                   color=[COLOURS["defect"] if n == test_set else COLOURS["neutral"] for n in names])
        ax_bar.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=60, ha="right")
        ax_bar.set_ylim(0, 100)
        ax_bar.set_ylabel("flagged (%)")
        ax_bar.set_title(f"every test set\n(validation FPR {100 * state['fpr_val']:.2f} %)")
        for k, colour in (("okay", COLOURS["okay"]), (test_set, COLOURS["defect"])):
            a, b = self.maxima[k]
            ax_sc.scatter(a, b, s=5, alpha=0.5, color=colour, label="test okay" if k == "okay" else k)
        ax_sc.axvline(state["t_mean"], color="k", ls="--", lw=1)
        ax_sc.axhline(state["t_std"], color="k", ls="--", lw=1)
        log_axis(ax_sc, "x")
        log_axis(ax_sc, "y")
        ax_sc.set_xlabel("max |<r>|")
        ax_sc.set_ylabel("max sigma(r)")
        ax_sc.legend(loc="lower right", markerscale=2)
        if n_ex:
            from .patches import crop

            cmap = flag_colormap()
            patches, residuals = self.examples[test_set]
            for i in range(n_ex):
                codes = th.flags(*kernel_statistics(residuals[i]))
                ax = fig.add_subplot(grid[1, 2 * i])
                ax.imshow(crop(patches[i]), cmap="gray")
                ax.set_title(f"{test_set} #{i}", fontsize=11)
                ax.set_axis_off()
                ax = fig.add_subplot(grid[1, 2 * i + 1])
                ax.imshow(codes, cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
                ax.set_title(f"flagged: {int((codes > 0).sum())}", fontsize=11)
                ax.set_axis_off()
        fig.tight_layout()
        return fig

    def widget(self, test_set=None, target_fpr=DEFAULT_FPR):
        """The live explorer (ipywidgets): a test set, two threshold sliders and a target FPR.

        Moving a threshold slider uses those thresholds; pressing "calibrate" sets both from
        the target FPR on the validation okay patches.

        Returns
        -------
        ipywidgets.VBox
        """
        import ipywidgets as W
        import matplotlib.pyplot as plt
        from IPython.display import display

        th = self.thresholds_for_fpr(target_fpr)
        a = np.concatenate([m[0] for m in self.maxima.values()])
        b = np.concatenate([m[1] for m in self.maxima.values()])

        def slider(values, value, label):
            lo, hi = np.log10(max(values.min(), 1e-6)), np.log10(values.max() * 2)
            return W.FloatLogSlider(value=value, base=10, min=lo, max=hi, step=(hi - lo) / 200,
                                    description=label, readout_format=".2e", continuous_update=False)

        choose = W.Dropdown(options=self.test_sets, value=test_set or self.test_sets[0], description="test set")
        s_mean, s_std = slider(a, th["t_mean"], "t_mean"), slider(b, th["t_std"], "t_std")
        fpr = W.FloatLogSlider(value=target_fpr, base=10, min=-4, max=-0.5, step=0.05, description="target FPR",
                               readout_format=".2%", continuous_update=False)
        calibrate = W.Button(description="calibrate to target FPR")
        out = W.Output()

        def redraw(*_):
            with out:
                out.clear_output(wait=True)
                _, fig = self.update(choose.value, s_mean.value, s_std.value)
                display(fig)
                plt.close(fig)

        def on_calibrate(_):
            t = self.thresholds_for_fpr(fpr.value)
            s_mean.value, s_std.value = t["t_mean"], t["t_std"]  # each triggers a redraw

        for w in (choose, s_mean, s_std):
            w.observe(redraw, names="value")
        calibrate.on_click(on_calibrate)
        redraw()
        return W.VBox([W.HBox([choose, fpr, calibrate]), W.HBox([s_mean, s_std]), out])
