"""The model adapter: the ONNX file's safety checks, execution providers, preprocessing,
reading the output (logits or probabilities), and `auditor inspect`.

Import what you need from the modules (`auditor.model.adapter.load_model`); this
package loads nothing by itself, so `auditor.model.outputs` stays light.
"""
