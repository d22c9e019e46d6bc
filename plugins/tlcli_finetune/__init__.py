"""Built-in plugin: fine-tune a pretrained vision backbone with its lower layers frozen."""
