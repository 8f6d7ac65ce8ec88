//! What every stage runs on: the buses, systemd, what may be logged, the model files and
//! their conversion, ONNX Runtime, the worker processes and the OpenAI-compatible client that
//! talks to them. Knows nothing of profiles or turns.

pub mod bus;
pub mod ct2;
pub mod llm;
pub mod logging;
pub mod models;
pub mod onnx;
pub mod systemd;
pub mod worker;
