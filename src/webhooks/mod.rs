pub mod rich;
