//! The error every command ends with: any error, printed after `tailguard: `.

/// Any error that ends the command; its message is printed after `tailguard: `.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;
