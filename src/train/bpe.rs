//! Byte-level BPE tokenizer trained with the `tokenizers` crate on the training split only
//! (Sennrich, Haddow & Birch 2016, "Neural Machine Translation of Rare Words with Subword Units";
//! byte-level variant as GPT-2). Special tokens: `<pad>` = 0, `<s>` = 1 (BOS, prepended by the
//! post-processor), `</s>` = 2 (EOS, appended to training sequences).

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// Padding token.
pub const PAD: &str = "<pad>";
/// Beginning of sequence.
pub const BOS: &str = "<s>";
/// End of sequence.
pub const EOS: &str = "</s>";

/// Trains a byte-level BPE tokenizer of `vocab_size` tokens on `texts`.
pub fn train(texts: &[&str], vocab_size: usize) -> Result<Tokenizer, String> {
    let specials = vec![
        AddedToken::from(PAD, true),
        AddedToken::from(BOS, true),
        AddedToken::from(EOS, true),
    ];
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    tok.train(&mut trainer, texts.iter().copied())
        .map_err(|e| format!("tokenizer training failed: {e}"))?;
    let bos = tok.token_to_id(BOS).ok_or("BOS missing after training")?;
    let post = TemplateProcessing::builder()
        .try_single(format!("{BOS} $A"))
        .map_err(|e| e.to_string())?
        .special_tokens(vec![(BOS, bos)])
        .build()
        .map_err(|e| e.to_string())?;
    tok.with_post_processor(Some(post));
    Ok(tok)
}

/// Ids of the three special tokens (pad, bos, eos).
pub fn special_ids(tok: &Tokenizer) -> Result<(u32, u32, u32), String> {
    let id = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| format!("the tokenizer has no '{t}' token"))
    };
    Ok((id(PAD)?, id(BOS)?, id(EOS)?))
}

/// `tokenizer_config.json` so that transformers' `AutoTokenizer` loads the folder.
pub fn tokenizer_config(max_len: usize) -> serde_json::Value {
    serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "add_bos_token": true,
        "model_max_length": max_len,
        "clean_up_tokenization_spaces": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        (0..200)
            .map(|i| {
                format!(
                    "Patient {i} seen on 2020-01-{:02}; blood pressure 120 over {}.",
                    i % 28 + 1,
                    60 + i % 30
                )
            })
            .collect()
    }

    #[test]
    fn trains_deterministically_and_round_trips() {
        let texts = corpus();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let a = train(&refs, 400).unwrap();
        let b = train(&refs, 400).unwrap();
        assert_eq!(a.to_string(false).unwrap(), b.to_string(false).unwrap());
        assert_eq!(special_ids(&a).unwrap(), (0, 1, 2));
        let enc = a
            .encode("Patient 7 seen on 2020-01-08 — ünïcode ✓", true)
            .unwrap();
        assert_eq!(enc.get_ids()[0], 1, "BOS prepended");
        let back = a.decode(enc.get_ids(), true).unwrap();
        assert_eq!(back, "Patient 7 seen on 2020-01-08 — ünïcode ✓");
        // Merges learned: a frequent word is one token.
        let n = a.encode("Patient", false).unwrap().get_ids().len();
        assert_eq!(n, 1);
        assert!(a.get_vocab_size(true) <= 400);
    }
}
