//! The model routes of the hybrid layer: what the grammar fast path did not understand goes to
//! the local LLM (the `cabin-llm` worker), and answers that are not vehicle commands go to the
//! cloud when the profile allows it, the cloud is reachable, and it answers within budget.
//!
//! Models only *propose*: a tool call names one of the profile's intents and goes through
//! [`crate::understand::dialog::Assistant::propose`], the same checks as a fast-path match. The tools
//! offered are generated from the profile, so no model can reach a D-Bus method that no intent
//! names.

mod cloud;
mod decide;
mod guards;
mod prompt;
mod start;

pub use cloud::redact;
pub use decide::{Brain, Thought};
pub use guards::{answer_flaw, asks_a_question, Flaw};
pub use prompt::{tool_name, tools};
pub use start::{embedding_worker, local_worker, start, LlmChoice};
