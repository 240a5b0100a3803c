"""Inputs generated from HF configs for kinds of model beyond token ids and images (audio, speech
encoder-decoders, text+image, video, time series): each exports with no inputs given and validates."""
import pytest
import torch
import transformers as T

import hierx_nb
from hierx_nb.hf import example_inputs

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
CONV = dict(conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2)
SEQ2SEQ = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
               encoder_ffn_dim=37, decoder_ffn_dim=37, vocab_size=99, max_target_positions=32)
TEXT = dict(**SMALL, vocab_size=99, max_position_embeddings=16)
VISION = dict(**SMALL, image_size=32, patch_size=8)

# kind -> (build, {input: expected shape})
KINDS = {
    "wav2vec2": (lambda: T.Wav2Vec2Model(T.Wav2Vec2Config(**SMALL, **CONV)), {"input_values": (1, 345)}),
    "hubert": (lambda: T.HubertModel(T.HubertConfig(**SMALL, **CONV)), {"input_values": (1, 345)}),
    "wavlm": (lambda: T.WavLMModel(T.WavLMConfig(**SMALL, **CONV, num_buckets=16)), {"input_values": (1, 345)}),
    "data2vec_audio": (lambda: T.Data2VecAudioModel(T.Data2VecAudioConfig(
        **SMALL, **CONV, conv_pos_kernel_size=5, num_conv_pos_embeddings_layers=1)), {"input_values": (1, 345)}),
    "audio_spectrogram_transformer": (lambda: T.ASTModel(T.ASTConfig(
        **SMALL, patch_size=8, max_length=32, num_mel_bins=16, frequency_stride=8, time_stride=8)),
        {"input_values": (1, 32, 16)}),
    "whisper": (lambda: T.WhisperModel(T.WhisperConfig(
        **SEQ2SEQ, num_mel_bins=16, max_source_positions=16, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1)), {"input_features": (1, 16, 32), "decoder_input_ids": (1, 16)}),
    "speech_to_text": (lambda: T.Speech2TextModel(T.Speech2TextConfig(
        **SEQ2SEQ, input_feat_per_channel=16, conv_channels=16, max_source_positions=64)),
        {"input_features": (1, 64, 16), "decoder_input_ids": (1, 16)}),
    "clip": (lambda: T.CLIPModel(T.CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)),
             {"input_ids": (1, 16), "attention_mask": (1, 16), "pixel_values": (1, 3, 32, 32)}),
    "siglip": (lambda: T.SiglipModel(T.SiglipConfig(text_config=TEXT, vision_config=VISION)),
               {"input_ids": (1, 16), "attention_mask": (1, 16), "pixel_values": (1, 3, 32, 32)}),
    "owlvit": (lambda: T.OwlViTModel(T.OwlViTConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)),
               {"input_ids": (1, 16), "attention_mask": (1, 16), "pixel_values": (1, 3, 32, 32)}),
    "videomae": (lambda: T.VideoMAEModel(T.VideoMAEConfig(**VISION, num_frames=4, tubelet_size=2)),
                 {"pixel_values": (1, 4, 3, 32, 32)}),
    "timesformer": (lambda: T.TimesformerModel(T.TimesformerConfig(**VISION, num_frames=4)),
                    {"pixel_values": (1, 4, 3, 32, 32)}),
    "vivit": (lambda: T.VivitModel(T.VivitConfig(**SMALL, image_size=32, num_frames=4, tubelet_size=[2, 8, 8])),
              {"pixel_values": (1, 4, 3, 32, 32)}),
    "patchtst": (lambda: T.PatchTSTModel(T.PatchTSTConfig(
        d_model=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=37, context_length=32, patch_length=8,
        patch_stride=8, num_input_channels=3)), {"past_values": (1, 32, 3)}),
    "vision_encoder_decoder": (lambda: T.VisionEncoderDecoderModel(
        T.VisionEncoderDecoderConfig.from_encoder_decoder_configs(
            T.ViTConfig(**VISION), T.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=99, n_positions=32,
                                                add_cross_attention=True, is_decoder=True))),
        {"pixel_values": (1, 3, 32, 32), "decoder_input_ids": (1, 16)}),
}


def _build(kind):
    torch.manual_seed(0)
    return KINDS[kind][0]().eval()


@pytest.mark.parametrize("kind", list(KINDS))
def test_generated_inputs_export_and_validate(kind):
    model = _build(kind)
    _, kwargs = example_inputs(model)
    assert {k: tuple(v.shape) for k, v in kwargs.items() if isinstance(v, torch.Tensor)} == KINDS[kind][1]
    result = hierx_nb.export(model, output=None)  # no inputs given
    assert result.strategy == "dynamo"
    assert result.coverage_pct == 100.0 * result.nodes["source"].isin(["exact", "pattern"]).mean()  # known share
    report = result.validate(atol=1e-4)
    assert report["ok"].all(), report


def test_dynamic_examples_have_a_batch_of_two():
    _, kwargs = example_inputs(_build("whisper"), dynamic=True)
    assert {k: v.shape[0] for k, v in kwargs.items()} == {"input_features": 2, "decoder_input_ids": 2}


def test_model_needing_more_than_can_be_generated_lists_its_required_inputs():
    model = T.TimeSeriesTransformerModel(T.TimeSeriesTransformerConfig(
        prediction_length=4, context_length=8, d_model=16, encoder_layers=1, decoder_layers=1))
    with pytest.raises(hierx_nb.InputError, match="cannot generate inputs for TimeSeriesTransformerModel: it also "
                                                  "needs past_time_features.*its forward requires past_values, "
                                                  "past_time_features"):
        example_inputs(model)
