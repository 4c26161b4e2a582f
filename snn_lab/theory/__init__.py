"""The mean-field theory: what infinite width predicts for each layer (meanfield), and the
order/chaos phase diagram (phase). Never imports the simulation. predict, predict_probes and
report are safe's: NaN (null) with a reason where a prediction cannot be computed, never raised."""

from snn_lab.theory.density import density_note, layer_density
from snn_lab.theory.meanfield import (
    PROBES,
    THEORY,
    FixedPoint,
    c_map,
    chi1,
    chi_c,
    correlation_fixed_point,
    fixed_point,
    g_jacobian,
    g_map,
    input_correlation,
    layer_stats,
    mean_var_map,
    output_moments,
    pair_output,
    preact_var,
    q_map,
    q_slope,
    weight_scale,
)
from snn_lab.theory.safe import fixed_output, notes, predict, predict_probes, report
from snn_lab.theory.selu import selu_params

__all__ = ['PROBES', 'THEORY', 'FixedPoint', 'c_map', 'chi1', 'chi_c', 'correlation_fixed_point', 'density_note', 'fixed_output', 'fixed_point', 'g_jacobian', 'g_map', 'input_correlation', 'layer_density', 'layer_stats', 'mean_var_map', 'notes', 'output_moments', 'pair_output', 'preact_var', 'predict', 'predict_probes', 'q_map', 'q_slope', 'report', 'selu_params', 'weight_scale']
